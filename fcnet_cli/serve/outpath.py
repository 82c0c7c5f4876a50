"""Where an output file may go, and how it gets there without half-written or lost files.

Every command that writes a file the user names (predict, export, splits, compare, plot)
goes through `check_output` before any work and `staged_output` for the writing:

- refused up front: a missing or read-only folder, a directory, a symbolic link (never
  followed), any of the command's inputs, and any path inside a run directory, a
  checkpoint or a seed group (the run's own files must stay loadable);
- written to a temporary file beside the target, named ``.NAME.tmp-PID-XXXX``;
- published with ``os.link`` when ``overwrite`` is off, so that of two commands racing for
  one name exactly one wins and the other fails cleanly (exit 2), else with ``os.replace``;
- the temporary file is removed on every exit path, SIGTERM included (it raises
  `Terminated` while the write is staged); after a kill -9, the next write to the same
  name removes the temporaries whose process is gone.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from fcnet_cli.engine.store.files import pid_alive
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import FcnetError, RunError, UsageError

__all__ = ["STDOUT", "Terminated", "check_output", "is_stdout", "staged_output",
           "sweep_stale"]

STDOUT = "-"  # `-o -`: the output goes to standard output
# files that mark a folder as a run, a checkpoint or a seed group: nothing is written inside
_RUN_MARKERS = ((RunDir.CONFIG, RunDir.CHECKPOINTS), (f"{RunDir.CHECKPOINTS}/{RunDir.MANIFEST}",),
                (RunDir.WEIGHTS,), (RunDir.GROUP,))


class Terminated(FcnetError):
    """SIGTERM arrived while an output was being written; nothing was written. Exit 143."""

    exit_code = 143


def is_stdout(out: Path | str | None) -> bool:
    """Whether ``-o`` names standard output (``-o -``)."""
    return out is not None and str(out) == STDOUT


def _protected_folder(folder: Path) -> Path | None:
    """The nearest enclosing run directory, checkpoint or seed group of ``folder``, if any."""
    for d in (folder, *folder.parents):
        for marker in _RUN_MARKERS:
            if all((d / name).exists() for name in marker):
                return d
    return None


def check_output(out: Path, inputs: list[Path], *, overwrite: bool,
                 figure_of: Path | None = None, make_parents: bool = False) -> None:
    """Refuse an output path that would lose data or cannot be written, before any work.

    ``figure_of`` is the run (or sweep) directory a figure describes: a PNG directly inside
    it is allowed (the figure belongs to the run), never in a subfolder, never another run.

    Raises:
        UsageError: a missing or non-writable folder, a directory, a symbolic link, a path
            inside a run directory / checkpoint / seed group, one of ``inputs`` (even with
            ``overwrite``), or an existing file without ``overwrite``.
    """
    out = Path(out)
    parent = out.parent
    if make_parents and not parent.exists() and not parent.is_symlink():
        _make_folder(out, parent)
    if not parent.is_dir():
        raise UsageError(f"{out}: directory {parent} does not exist")
    if out.is_symlink():
        raise UsageError(f"{out}: is a symbolic link; fcnet does not write through links "
                         f"(give the target's own path)")
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a file name")
    if out.exists() and not out.is_file():
        raise UsageError(f"{out}: not a regular file (a device, FIFO or socket); "
                         f"give a file name")
    real_parent = parent.resolve()
    protected = _protected_folder(real_parent)
    if protected is not None and not _own_figure(out, real_parent, protected, figure_of):
        raise UsageError(f"{out}: inside the run/checkpoint directory {protected}; "
                         f"write outputs elsewhere (the run's files must stay loadable)")
    for src in inputs:
        same = out.exists() and src.exists() and os.path.samefile(out, src)
        if same or (real_parent / out.name) == Path(src).resolve():
            raise UsageError(f"{out}: is the input file; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK) or _read_only_fs(parent):
        raise UsageError(f"{out}: directory {parent} is not writable")
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: already exists (use --overwrite to replace it)")


def _make_folder(out: Path, parent: Path) -> None:
    """Create ``parent`` unless its nearest existing ancestor is a run or not writable."""
    base = next(d for d in parent.parents if d.exists() or d.is_symlink())
    protected = _protected_folder(base.resolve())
    if protected is not None:
        raise UsageError(f"{out}: inside the run/checkpoint directory {protected}; "
                         f"write outputs elsewhere (the run's files must stay loadable)")
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK) or _read_only_fs(base):
        raise UsageError(f"{out}: directory {parent} does not exist and cannot be created")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create directory {parent}: {e.strerror}") from None


def _own_figure(out: Path, real_parent: Path, protected: Path,
                figure_of: Path | None) -> bool:
    """A PNG written directly in the run directory it describes (not over its files)."""
    if figure_of is None or out.suffix.lower() != ".png":
        return False
    own = Path(figure_of).resolve()
    return protected == own and real_parent == own


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


_TMP = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+(\.parts)?")


def sweep_stale(out: Path) -> list[Path]:
    """Remove temporaries of ``out`` left by processes that no longer run; return them."""
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    for p in entries:
        m = _TMP.fullmatch(p.name)
        if not m or m.group("name") != out.name or pid_alive(int(m.group("pid"))):
            continue
        _remove(p)
        removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


def _publish(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``out``; without ``overwrite`` never replace a file."""
    if overwrite:
        if out.is_symlink():  # appeared since check_output: never write through it
            raise UsageError(f"{out}: is a symbolic link; fcnet does not write through links")
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # atomic exclusive create: fails if the name exists
    except FileExistsError:
        raise UsageError(f"{out}: already exists (written by another process meanwhile; "
                         f"use --overwrite to replace it)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # no hard links here
        os.close(fd)
        os.replace(tmp, out)
    tmp.unlink(missing_ok=True)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` (so every `finally` runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise Terminated("terminated (SIGTERM) while writing the output; nothing was written")

    previous: Any = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_error(out: Path, e: OSError) -> FcnetError:
    why = e.strerror or str(e)
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return UsageError(f"{out}: cannot write there: {why}")
    if e.errno == errno.ENOSPC:
        return RunError(f"{out}: no space left on the device; nothing was written")
    return RunError(f"cannot write {out}: {why}")


@contextmanager
def staged_output(out: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; publish it onto ``out`` if the block succeeds.

    Without ``overwrite`` the final name is created exclusively (a concurrent writer that
    got there first makes this one fail with UsageError). The temporary path (or a
    ``.parts`` folder beside it) is removed on every exit path, SIGTERM included.
    """
    out = Path(out)
    sweep_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with _sigterm_raises():
            yield tmp
            _publish(tmp, out, overwrite=overwrite)
    except OSError as e:
        raise _write_error(out, e) from None
    finally:
        _remove(tmp)
        _remove(tmp.parent / f"{tmp.name}.parts")

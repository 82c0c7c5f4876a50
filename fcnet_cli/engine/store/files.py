"""Files of a run directory: fresh run directories, atomic writes, and the run-dir lock.

Every file fcnet writes goes through `atomic_write_*` (temporary file, fsync, rename), so a
crash leaves the old complete file or the new one; `RunLock` keeps two processes out of one
run directory, and `holder_alive` tells (without torch, for `fcnet compare`) whether the
process that last held it still lives.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import time
from datetime import datetime
from pathlib import Path

from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import RunError, UsageError, cause

__all__ = ["LATEST", "RunBusyError", "RunLock", "atomic_write_bytes",
           "atomic_write_text", "fsync_dir", "holder_alive", "new_run_dir",
           "pid_alive", "resolve_latest", "write_new_file"]


def new_run_dir(output_dir: Path, name: str) -> Path:
    """Create and return a fresh `output_dir/name/<run-id>`; never reuses an existing one."""
    if name in ("", ".", "..") or Path(name).name != name:
        raise RunError(f"experiment name {name!r} cannot be used as a directory name")
    parent = Path(output_dir) / name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    i = 1
    while True:
        run_dir = parent / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir(exist_ok=False)  # exclusive: two processes never share a run
            return run_dir
        except FileExistsError:
            i += 1
        except OSError as e:
            raise RunError(f"cannot create {run_dir}: {cause(e)}") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` exclusively, write, flush and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; on failure the previous file is left intact."""
    path = Path(path)
    tmp = path.parent / f".tmp-{secrets.token_hex(6)}-{path.name}"
    try:
        try:
            write_new_file(tmp, data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # gone after a successful replace
        fsync_dir(path.parent)
    except OSError as e:
        raise RunError(f"cannot write {path}: {cause(e)}") from None


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


class RunBusyError(UsageError):
    """Another live fcnet process holds the run directory's lock. Exit code 2."""


def _holder(fd: int) -> str:
    """The pid the lock holder wrote (it writes right after locking: wait briefly for it)."""
    for _ in range(20):
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if pid.isdigit():
            return pid
        time.sleep(0.005)
    return ""


class RunLock:
    """Exclusive, non-blocking `flock` on `run_dir/.lock` for as long as the context lasts.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = RunDir(run_dir).lock
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        assert self._fd is None, "RunLock is not re-entrant"
        fd = -1
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            busy = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
            holder = _holder(fd) if busy else ""
            if fd >= 0:
                os.close(fd)
            if busy:  # a usage error: nothing was read, written or removed
                who = f"fcnet process {holder}" if holder else "another fcnet process"
                raise RunBusyError(f"{self.run_dir}: run in use by {who}") from None
            raise RunError(f"cannot lock run directory {self.run_dir}: {cause(e)}") from None
        # the holder's pid, for the message above: one fixed-width write, never a moment
        # where a reader sees a truncated file with someone else's pid
        os.pwrite(fd, f"{os.getpid():<19}\n".encode(), 0)
        os.ftruncate(fd, 20)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


LATEST = "latest"


def _run_id_key(path: Path) -> tuple[str, int]:
    """"20261202-085300-2" -> ("20261202-085300", 2): the second run started that second."""
    parts = path.name.split("-")
    n = parts[2] if len(parts) > 2 else "1"
    return "-".join(parts[:2]), int(n) if n.isdigit() else 0


_GROUP_FAILED = ("failed", "diverged")  # a seed group with such a seed has no whole result


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _broken(run: Path) -> bool:
    """A run `latest` passes over: a run that failed; a seed group with a seed that failed
    or diverged, or that was killed while training (group.json still says `training` for a
    seed no process holds). A single run that diverged or was killed keeps its place: its
    best checkpoint predates the divergence, and a killed run is shown as incomplete by
    `fcnet compare` and continued by `--resume`.
    """
    rd = RunDir(run)
    if rd.is_group():
        statuses = _read_json(rd.group).get("status") or {}
        if not isinstance(statuses, dict):
            return True
        return any(s in _GROUP_FAILED or (s == "training" and not holder_alive(run / str(name)))
                   for name, s in statuses.items())
    return _read_json(rd.summary).get("status") == "failed"


def resolve_latest(path: str | Path, *, any_status: bool = False) -> Path:
    """`runs/NAME/latest` -> the newest run directory of NAME (run ids are start times), also
    inside a longer path (`runs/NAME/latest/seed-0`: a seed of the newest group); any other
    path is returned as it is. Raises UsageError when NAME has no runs.

    Failed runs and killed seed groups are passed over unless `any_status` (what `--resume`
    asks for: the newest run, to continue it).
    """
    path = Path(path)
    inner = [i for i, part in enumerate(path.parts[:-1]) if part == LATEST]
    if inner and not path.exists():
        head = resolve_latest(Path(*path.parts[:inner[0] + 1]), any_status=any_status)
        return resolve_latest(head.joinpath(*path.parts[inner[0] + 1:]), any_status=any_status)
    if path.name != LATEST or path.exists():
        return path
    folder = path.parent
    runs = [p for p in folder.iterdir() if RunDir(p).is_run()] \
        if folder.is_dir() else []
    if not runs:
        raise UsageError(f"{path}: no runs in {folder} (`latest` is the newest run there)")
    usable = runs if any_status else [p for p in runs if not _broken(p)]
    if not usable:
        raise UsageError(f"{path}: every run in {folder} failed or was killed (`latest` "
                         f"passes over those); name a run directory")
    return max(usable, key=_run_id_key)


def holder_alive(run_dir: Path) -> bool:
    """Whether the pid in the run's .lock is a live process: the holder writes it and
    clears it on exit, SIGKILL leaves it. Read only: taking the lock to test it could make
    a concurrent `--resume` fail as busy. (A reused pid reads as alive.)"""
    try:
        pid = int(RunDir(run_dir).lock.read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return False
    return pid > 0 and pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True

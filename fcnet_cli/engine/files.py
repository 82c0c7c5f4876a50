"""Files of a run directory: fresh run directories, atomic writes, and the run-dir lock.

Every file fcnet writes goes through `atomic_write_*` (temporary file, fsync, rename), so a
crash leaves the old complete file or the new one; `RunLock` keeps two processes out of one
run directory.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from datetime import datetime
from pathlib import Path

from fcnet_cli.errors import RunError

__all__ = ["RunLock", "atomic_write_bytes", "atomic_write_text", "cause", "fsync_dir",
           "new_run_dir", "write_new_file"]


def cause(e: BaseException) -> str:
    """One line describing an exception (OSError: its strerror, e.g. 'No space left on device')."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
    return " ".join(text.split())


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


class RunLock:
    """Exclusive, non-blocking `flock` on `run_dir/.lock` for as long as the context lasts.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        assert self._fd is None, "RunLock is not re-entrant"
        fd = -1
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            busy = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() if busy else ""
            if fd >= 0:
                os.close(fd)
            if busy:
                raise RunError(f"run directory {self.run_dir} is in use by another fcnet "
                               f"process (pid {holder or 'unknown'})") from None
            raise RunError(f"cannot lock run directory {self.run_dir}: {cause(e)}") from None
        os.ftruncate(fd, 0)  # the holder's pid, for the message above
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

"""One process per run directory: an exclusive lock on `run_dir/.lock`, and who holds it.

No torch: `fcnet compare` reads the holder's pid to tell a live run from a killed one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from fcnet_cli.errors import RunError, UsageError

__all__ = ["LOCK_FILE", "RunBusyError", "RunLock", "holder_alive"]

LOCK_FILE = ".lock"


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
        self.path = self.run_dir / LOCK_FILE
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
            why = " ".join((e.strerror or str(e)).split())
            raise RunError(f"cannot lock run directory {self.run_dir}: {why}") from None
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


def holder_alive(run_dir: Path) -> bool:
    """Whether the pid in the run's .lock is a live process: the holder writes it and
    clears it on exit, SIGKILL leaves it. Read only: taking the lock to test it could make
    a concurrent `--resume` fail as busy. (A reused pid reads as alive.)"""
    try:
        pid = int((Path(run_dir) / LOCK_FILE).read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True

"""A signal that comes while the data loads stops `fcnet train` at once.

The Python-level handler (`cli.run._signals_to`) runs only between bytecodes: inside a long
native call (polars reading a wide CSV) it waits for the call to end. A thread woken by
the signal's wakeup byte gives the main thread a moment to raise `Interrupted` itself and,
if it is still inside native code and the data is still loading, ends the process with the
signal's exit code. Nothing is lost: no run directory is written before the data is ready
(`StopToken.mark_data_ready`, which takes the token's lock, so the two cannot interleave),
and file locks are released by the kernel.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcnet_cli.events import StopToken

__all__ = ["GRACE_SECONDS", "stop_while_loading"]

GRACE_SECONDS = 0.5  # the main thread's chance to stop cleanly (its finally blocks run)
_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _watch(read_fd: int, stop: StopToken, done: threading.Event) -> None:
    while True:
        try:
            got = os.read(read_fd, 16)
        except OSError:
            return
        if not got:  # the write end closed: training started or the command ended
            return
        signum = next((s for s in got if s in _CODES), None)
        if signum is None:
            continue
        if done.wait(GRACE_SECONDS):  # the main thread stopped by itself
            return
        with stop.lock:
            if stop.data_ready or done.is_set():
                return
            name = signal.Signals(signum).name
            os.write(2, f"error: interrupted ({name}) while loading the data; no run was "
                        f"started\n".encode())
            os._exit(_CODES[signal.Signals(signum)])


@contextmanager
def stop_while_loading(stop: StopToken) -> Iterator[None]:
    """While the block runs, SIGINT/SIGTERM before `stop.data_ready` end the process soon."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:
        os.close(read_fd)
        os.close(write_fd)
        yield
        return
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(read_fd, stop, done), daemon=True,
                               name="fcnet-stop-while-loading")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous)
        os.close(write_fd)
        watcher.join(timeout=GRACE_SECONDS * 4)
        os.close(read_fd)

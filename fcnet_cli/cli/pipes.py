"""A closed standard output (`fcnet train … | head -1`) never fails a run.

Python ignores SIGPIPE, so the first write after the reader has gone raises BrokenPipeError
inside a display callback, which would stop training and mark the run failed. The choice
here: stop printing and keep training. The display is dropped, standard output is pointed at
/dev/null (so later writes and the interpreter's final flush succeed quietly), and the run
ends, is saved and exits with its own code as if the output had been read.

rich reports a broken pipe its own way: it points stdout at /dev/null and raises
SystemExit(1) (`Console.on_broken_pipe`); both forms are caught where the display is called.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fcnet_cli.events import BatchProgress, Callback, EpochMetrics, RunResult, RunStart, SweepUpdate

__all__ = ["StdoutGuard", "silence_stdout", "stdout_may_close"]

_BROKEN = (BrokenPipeError, SystemExit)  # SystemExit: rich's way of reporting EPIPE


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null (no-op when stdout is not a real file)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a test runner's in-memory stream
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextmanager
def stdout_may_close() -> Iterator[None]:
    """Swallow a BrokenPipeError from printing the final report; silence stdout after it."""
    try:
        yield
    except _BROKEN:
        silence_stdout()


class StdoutGuard(Callback):
    """Forwards events to a display until standard output is closed, then drops it."""

    def __init__(self, inner: Callback) -> None:
        self.inner: Callback | None = inner

    def _call(self, name: str, *args: Any) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, name)(*args)
        except _BROKEN:
            self.inner = None
            silence_stdout()

    def on_run_start(self, start: RunStart) -> None:
        self._call("on_run_start", start)

    def on_batch_end(self, progress: BatchProgress) -> None:
        self._call("on_batch_end", progress)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        self._call("on_epoch_end", metrics)

    def on_member_end(self, member: int, result: RunResult) -> None:
        self._call("on_member_end", member, result)

    def on_sweep_update(self, update: SweepUpdate) -> None:
        self._call("on_sweep_update", update)

    def close(self) -> None:
        self._call("close")

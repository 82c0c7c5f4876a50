"""Domain errors. The CLI maps them to exit codes (DESIGN.md); the engine only raises them."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CheckpointError", "ConfigError", "DataError", "FcnetError", "Interrupted", "RunError",
           "UsageError", "cause"]


def cause(e: BaseException) -> str:
    """One line describing an exception (OSError: its strerror, e.g. 'No space left on device')."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
    return " ".join(text.split())


class FcnetError(Exception):
    """Base of every error fcnet reports as a one-line message."""

    exit_code = 1


class UsageError(FcnetError):
    """Bad input from the user: config, data, checkpoint path. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration problem list; each entry is one line naming the place and the fault."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DataError(UsageError):
    """A data set that cannot be used (missing file, NaN features, labels out of range, ...)."""


class CheckpointError(UsageError):
    """A path that is not a usable checkpoint (missing, truncated, tampered, mismatched)."""


class RunError(FcnetError):
    """A runtime failure while training or saving (disk full, run directory locked). Exit 1."""


class Interrupted(FcnetError):
    """SIGINT/SIGTERM before anything was written (e.g. while the data loads): exit 130/143."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

"""Bounds on the work a data file may ask for, checked while the file streams.

A 1 MB ``.csv.gz`` can expand to gigabytes; a header can name millions of columns. Before a
CSV is parsed, `check_stream` reads it once in 1 MiB blocks (decompressing a ``.gz`` on the
way, never holding more than a block) and stops at the first limit passed, so a bomb costs
the time to read up to the limit, not to expand it. Each limit has an environment setting:

    FCNET_MAX_BYTES       bytes of CSV text after decompression   (default 64 GiB)
    FCNET_MAX_ROWS        data rows                               (default 2,000,000,000)
    FCNET_MAX_COLUMNS     columns in the header                   (default 100,000)

(Categories per column have their own setting, ``data.max_categories``; a checkpoint's are
bounded on load by `engine.metaschema`.) Passing one is a DataError (exit 2) naming the file,
the limit and its setting.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from fcnet_cli.errors import DataError

__all__ = ["Limits", "check_columns", "check_stream", "limits"]

BLOCK = 1 << 20
_DEFAULTS = {"bytes": 64 << 30, "rows": 2_000_000_000, "columns": 100_000}


@dataclass(frozen=True)
class Limits:
    """The bounds in force (see the module docstring for the settings)."""

    bytes: int
    rows: int
    columns: int


def _setting(key: str) -> int:
    name = f"FCNET_MAX_{key.upper()}"
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return _DEFAULTS[key]
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise DataError(f"{name}={raw!r}: must be a positive whole number") from None
    if value < 1:
        raise DataError(f"{name}={raw!r}: must be a positive whole number")
    return value


def limits() -> Limits:
    """The limits from the environment (read on each call: no import-time defaults)."""
    return Limits(**{key: _setting(key) for key in _DEFAULTS})


def _over(path: Path, what: str, key: str, value: int) -> DataError:
    return DataError(f"{path}: more than {value:,} {what} (limit FCNET_MAX_{key.upper()}="
                     f"{value}); raise the setting if the file is what you meant")


def check_stream(path: Path, lim: Limits | None = None) -> None:
    """Read ``path`` (a ``.gz`` decompressed as it streams) and stop at the first limit passed
    on decompressed bytes or rows (newlines after the header)."""
    lim = lim or limits()
    gz = path.name.lower().endswith(".gz")
    size, lines = 0, 0
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            while block := f.read(BLOCK):
                size += len(block)
                lines += block.count(b"\n")
                if size > lim.bytes:
                    raise _over(path, "bytes of text" + (" once decompressed" if gz else ""),
                                "bytes", lim.bytes)
                if lines - 1 > lim.rows:
                    raise _over(path, "rows", "rows", lim.rows)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def check_columns(path: Path, n: int, lim: Limits | None = None) -> None:
    """A header of more than the column limit is refused."""
    lim = lim or limits()
    if n > lim.columns:
        raise _over(path, "columns", "columns", lim.columns)

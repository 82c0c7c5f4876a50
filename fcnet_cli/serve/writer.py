"""Output files written chunk by chunk into a temporary file, renamed into place at the end.

A command that fails half-way leaves no partial output: `staged_output` removes the temporary
file on any error, and only a completed write is renamed onto the requested path.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, get_args

import polars as pl

from fcnet_cli.config import PredictFormat as OutputFormat
from fcnet_cli.errors import RunError, UsageError

__all__ = ["OutputFormat", "ChunkWriter", "check_output", "format_for", "staged_output"]

OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
_BY_SUFFIX: dict[str, OutputFormat] = {".csv": "csv", ".parquet": "parquet", ".json": "json"}


def format_for(out: Path | None, fmt: str | None) -> OutputFormat:
    """The output format: as given, else from ``out``'s suffix, else CSV."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)} (got {fmt!r})")
        return fmt  # type: ignore[return-value]
    return _BY_SUFFIX.get(out.suffix.lower(), "csv") if out is not None else "csv"


def check_output(out: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output path that would lose data or cannot be written, before any work.

    Raises:
        UsageError: a missing parent directory, a directory, one of ``inputs`` (even with
            ``overwrite``), or an existing file without ``overwrite``.
    """
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"{out}: directory {parent} does not exist")
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a file name")
    for src in inputs:
        if out.exists() and src.exists() and os.path.samefile(out, src):
            raise UsageError(f"{out}: is the input file; choose another output path")
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: already exists (use --overwrite to replace it)")


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; rename it onto ``out`` if the block succeeds."""
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    try:
        yield tmp
        os.replace(tmp, out)
    except OSError as e:
        raise RunError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


class ChunkWriter:
    """Appends data-frame chunks to one CSV, JSON (an array of row objects) or Parquet file.

    Parquet cannot be appended to, so chunks go to numbered part files in a folder and are
    streamed into the final file by polars at `close` (memory bounded by a row group).
    """

    def __init__(self, fmt: OutputFormat, path: Path | None, stream: IO[str] | None = None):
        if fmt == "parquet" and path is None:
            raise UsageError("parquet output needs -o FILE (it cannot go to stdout)")
        self.fmt, self.path, self.rows = fmt, path, 0
        self._parts: list[Path] = []
        self._text: IO[str] | None = stream
        self._owns = False
        if fmt == "parquet":
            assert path is not None
            self._parts_dir = path.parent / f"{path.name}.parts"
            self._parts_dir.mkdir()
        elif self._text is None:
            assert path is not None
            self._text, self._owns = open(path, "w", encoding="utf-8", newline=""), True
        if fmt == "json":
            self._write("[")

    def _write(self, s: str) -> None:
        assert self._text is not None
        self._text.write(s)

    def write(self, chunk: pl.DataFrame) -> None:
        """Append ``chunk``'s rows (same columns every call)."""
        if self.fmt == "csv":
            self._write(chunk.write_csv(include_header=self.rows == 0))
        elif self.fmt == "json":
            body = chunk.write_json()[1:-1]  # the rows of one JSON array, without [ and ]
            if body:
                self._write(("," if self.rows else "") + "\n" + body)
        else:
            part = self._parts_dir / f"{len(self._parts):06d}.parquet"
            chunk.write_parquet(part)
            self._parts.append(part)
        self.rows += chunk.height

    def close(self, empty: pl.DataFrame) -> None:
        """Finish the file; ``empty`` (0 rows, the output columns) gives the header/schema of
        an output without rows."""
        if self.rows == 0 and self.fmt != "json":
            self.write(empty)
        if self.fmt == "json":
            self._write("\n]\n" if self.rows else "]\n")
        if self.fmt == "parquet":
            assert self.path is not None
            pl.scan_parquet(self._parts).sink_parquet(self.path)
            shutil.rmtree(self._parts_dir)
        elif self._owns and self._text is not None:
            self._text.close()
        elif self._text is not None:
            self._text.flush()

    def abort(self) -> None:
        """Release files after a failure (the caller removes the staged path)."""
        if self._owns and self._text is not None:
            self._text.close()
        if self.fmt == "parquet":
            shutil.rmtree(self._parts_dir, ignore_errors=True)

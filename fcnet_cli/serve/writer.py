"""Output files written chunk by chunk into a temporary file, published at the end.

A command that fails half-way leaves no partial output: `staged_output` (outpath.py) removes
the temporary file on any error, and only a completed write is published onto the path.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO, get_args

import polars as pl

from fcnet_cli.config import PredictFormat as OutputFormat
from fcnet_cli.errors import UsageError
from fcnet_cli.serve.outpath import check_output, staged_output

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

"""Input tables read in row chunks: CSV (also .csv.gz) and Parquet with polars, NPZ whole.

CSV and Parquet are streamed (`LazyFrame.collect_batches`), so peak memory follows the chunk
size, not the file; an NPZ archive cannot be read in parts and is loaded whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from fcnet_cli.errors import DataError

__all__ = ["TableKind", "Table", "open_table"]

TableKind = Literal["csv", "parquet", "npz"]
_SUFFIXES: dict[str, TableKind] = {".csv": "csv", ".gz": "csv", ".parquet": "parquet",
                                   ".pq": "parquet", ".npz": "npz"}


def _kind(path: Path) -> TableKind:
    suffix = path.suffix.lower()
    if suffix == ".gz" and not path.name.lower().endswith(".csv.gz"):
        suffix = ""
    if suffix not in _SUFFIXES:
        raise DataError(f"{path}: unknown table format (expected .csv, .csv.gz, .parquet or "
                        f".npz)")
    return _SUFFIXES[suffix]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class Table:
    """One input file: its columns, and its rows in chunks of chosen columns."""

    def __init__(self, path: Path):
        self.path = path
        self.source = str(path)
        self.kind = _kind(path)
        self._npz: dict[str, np.ndarray] | None = None
        self.columns = self._read_columns()

    def _lazy(self, dtypes: dict[str, Any]) -> pl.LazyFrame:
        if self.kind == "parquet":
            return pl.scan_parquet(self.path)
        return pl.scan_csv(self.path, schema_overrides=dtypes, infer_schema_length=1000)

    def _read_columns(self) -> list[str]:
        if self.kind == "npz":
            self._npz = _load_npz(self.path)
            return list(self._npz)
        try:
            return list(self._lazy({}).collect_schema().names())
        except pl.exceptions.NoDataError:
            raise DataError(f"{self.path}: file is empty (no header row)") from None
        except (OSError, pl.exceptions.PolarsError) as e:
            raise DataError(f"{self.path}: cannot read {self.kind} ({_first_line(e)})") from None

    def npz_array(self, name: str) -> np.ndarray:
        """One array of an NPZ table."""
        assert self._npz is not None
        return self._npz[name]

    def frames(self, columns: list[str], dtypes: dict[str, Any], batch_rows: int
               ) -> Iterator[tuple[int, pl.DataFrame]]:
        """Yield ``(first_row, chunk)`` with ``columns``, parsed with ``dtypes`` (CSV only).

        Raises:
            DataError: a cell that does not parse, naming its row and column.
        """
        lazy = self._lazy(dtypes).select(columns)
        start = 0
        try:
            for chunk in lazy.collect_batches(chunk_size=batch_rows):
                yield start, chunk
                start += chunk.height
        except (OSError, pl.exceptions.PolarsError) as e:
            if self.kind == "csv":
                self._locate_bad_cell(dtypes, batch_rows)
            raise DataError(f"{self.path}: cannot read {self.kind} ({_first_line(e)})") from None

    def _locate_bad_cell(self, dtypes: dict[str, Any], batch_rows: int) -> None:
        """Error path: re-read the typed columns as text and raise at the first bad cell."""
        names = list(dtypes)
        text = pl.scan_csv(self.path, schema_overrides={c: pl.String for c in names},
                           infer_schema=False).select(names)
        start = 0
        try:
            for chunk in text.collect_batches(chunk_size=batch_rows):
                for name in names:
                    col = chunk.get_column(name)
                    bad = col.str.strip_chars().cast(pl.Float64, strict=False).is_null() \
                        & col.is_not_null()
                    if bad.any():
                        row = int(bad.arg_max() or 0)
                        raise DataError(f"{self.path}: row {start + row + 1}, column '{name}': "
                                        f"{col[row]!r} is not a number")
                start += chunk.height
        except pl.exceptions.PolarsError:
            return  # not a cell problem (ragged lines, encoding): the caller reports it


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an NPZ archive; ``x`` (N, ...) is required, ``y`` optional."""
    try:
        archive: Any = np.load(path, allow_pickle=False)  # never unpickle user files
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: expected an .npz archive with an array x")
        with archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({_first_line(e)})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: missing array x (found: {', '.join(arrays) or 'none'})")
    return arrays


def open_table(path: Path) -> Table:
    """Open a CSV/Parquet/NPZ file for chunked reading.

    Raises:
        DataError: missing file, directory, unknown suffix, empty or unreadable file.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return Table(path)

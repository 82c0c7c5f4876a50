"""Input tables read in row chunks: CSV (also .csv.gz) and Parquet with polars, NPZ whole.
The one chunked reader (`fcnet predict`, `eval --data`, the serving side) and the one NPZ
reader (training's NPZ data sets too).

    table = open_table(path, data)                 # columns known, nothing parsed yet
    for first_row, frame in table.frames(columns, dtypes, batch_rows): ...
    arrays = read_npz(path, ("x", "y"))            # every array; the named ones required

Peak memory follows the chunk size, not the file: a CSV is read in blocks of bytes cut at a
row boundary and each block is parsed by polars (polars' own streaming reader reads ahead
of a slow consumer, so its memory grows with the file); a Parquet file is read one row slice
at a time. An NPZ archive cannot be read in parts and is loaded whole.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np
import polars as pl

from fcnet_cli.config import DataConfig
from fcnet_cli.engine.data.csvformat import CsvFormat, serving_format
from fcnet_cli.engine.data.limits import check_columns, check_stream
from fcnet_cli.engine.data.tables import existing_file
from fcnet_cli.errors import DataError

__all__ = ["Table", "TableKind", "open_table", "read_npz"]

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
    """One input file: its columns, and its rows in chunks of chosen columns.

    A CSV file's separator is the model's (`separator`) if its header line holds it, else
    the one detected there (engine.csvformat); `decimal_comma` applies unless that is ','.
    """

    def __init__(self, path: Path, separator: str | None = None, *,
                 decimal_comma: bool = False):
        self.path = path
        self.source = str(path)
        self.kind = _kind(path)
        self._npz: dict[str, np.ndarray] | None = None
        self._header = b""
        self._stored = (separator, decimal_comma)  # the model's data settings
        self.format = CsvFormat()
        self.columns = self._read_columns()

    def _open(self) -> IO[bytes]:
        if self.path.name.lower().endswith(".gz"):
            return cast(IO[bytes], gzip.open(self.path, "rb"))  # decompressed while read
        return open(self.path, "rb")

    def _read_columns(self) -> list[str]:
        if self.kind == "npz":
            self._npz = read_npz(self.path, ("x",))
            return list(self._npz)
        try:
            if self.kind == "parquet":
                return list(pl.scan_parquet(self.path).collect_schema().names())
            with self._open() as f:
                self._header = f.readline()
            if not self._header.strip():
                raise DataError(f"{self.path}: file is empty (no header row)")
            if self._header.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                self._header = self._header[3:]
            self.format = serving_format(self._header.rstrip(b"\r\n"), self._stored[0],
                                         decimal_comma=self._stored[1])
            names = pl.read_csv(io.BytesIO(self._header), has_header=False, infer_schema=False,
                                separator=self.format.separator).row(0)
            check_columns(self.path, len(names))
            dup = sorted(n for n, k in Counter(names).items() if k > 1)
            if dup:
                raise DataError(f"{self.path}: duplicate column name(s) "
                                f"{', '.join(map(repr, dup))} in the header; rename them")
            check_stream(self.path)  # bytes and rows bounded before any chunk is parsed
            return [str(n) for n in names]
        except (OSError, EOFError, pl.exceptions.PolarsError) as e:
            raise DataError(f"{self.path}: cannot read {self.kind} ({_first_line(e)})") from None

    def npz_array(self, name: str) -> np.ndarray:
        """One array of an NPZ table."""
        assert self._npz is not None
        return self._npz[name]

    def frames(self, columns: list[str], dtypes: dict[str, Any], batch_rows: int
               ) -> Iterator[tuple[int, pl.DataFrame]]:
        """Yield ``(first_row, chunk)`` with ``columns``; CSV columns are parsed with
        ``dtypes`` (others as text).

        Raises:
            DataError: a file that cannot be read, or a cell that does not parse (naming its
                row and column).
        """
        if self.kind == "parquet":
            yield from self._parquet_frames(columns, batch_rows)
            return
        schema = {c: dtypes.get(c, pl.String) for c in self.columns}
        start = 0
        try:
            with self._open() as f:
                f.readline()  # the header, parsed already
                for block in _row_blocks(f, batch_rows):
                    frame = self._parse(block, schema, columns, start)
                    yield start, frame
                    start += frame.height
        except (OSError, EOFError) as e:
            raise DataError(f"{self.path}: cannot read csv ({_first_line(e)})") from None

    def _parse(self, block: bytes, schema: dict[str, Any], columns: list[str], start: int
               ) -> pl.DataFrame:
        """One block of rows (no header line): ``columns`` parsed with ``schema``."""
        where = [self.columns.index(c) for c in columns]
        try:
            return pl.read_csv(block, has_header=False, schema=schema, columns=where,
                               separator=self.format.separator,
                               decimal_comma=self.format.decimal_comma).select(columns)
        except pl.exceptions.PolarsError as e:
            typed = [c for c in columns if schema[c] != pl.String]
            padded = self._text_parsed(block, schema, columns, typed, start)
            if padded is not None:  # numbers padded with spaces, as training reads them
                return padded
            raise DataError(f"{self.path}: cannot read csv ({_first_line(e)})") from None

    def _text_parsed(self, block: bytes, schema: dict[str, Any], columns: list[str],
                     typed: list[str], start: int) -> pl.DataFrame | None:
        """Error path: re-read ``columns`` as text; raise at the first cell of ``typed`` that is
        not a number, else return the block with them parsed after stripping spaces."""
        try:
            text = pl.read_csv(block, has_header=False, new_columns=self.columns,
                               infer_schema=False,
                               columns=[self.columns.index(c) for c in columns],
                               separator=self.format.separator)
        except pl.exceptions.PolarsError:
            return None  # not a cell problem (encoding, quoting): the caller reports polars'
        parsed = []
        for name in typed:
            col = text.get_column(name)
            cells = col.str.replace(",", ".") if self.format.decimal_comma else col
            number = cells.str.strip_chars().cast(pl.Float64, strict=False)
            bad = number.is_null() & col.is_not_null() & (col.str.strip_chars() != "")
            if bad.any():
                row = int(bad.arg_max() or 0)
                raise DataError(f"{self.path}: row {start + row + 1}, column '{name}': "
                                f"{col[row]!r} is not a number")
            parsed.append(number.cast(schema[name], strict=False))
        return text.with_columns(parsed).select(columns)

    def _parquet_frames(self, columns: list[str], batch_rows: int
                        ) -> Iterator[tuple[int, pl.DataFrame]]:
        try:
            lazy = pl.scan_parquet(self.path).select(columns)
            n = pl.scan_parquet(self.path).select(pl.len()).collect().item()
            for start in range(0, n, batch_rows):  # a slice reads only its row groups
                yield start, lazy.slice(start, batch_rows).collect()
        except (OSError, pl.exceptions.PolarsError) as e:
            raise DataError(f"{self.path}: cannot read parquet ({_first_line(e)})") from None


def _row_blocks(f: IO[bytes], batch_rows: int) -> Iterator[bytes]:
    """Blocks of about ``batch_rows`` whole CSV rows (cut at a newline outside quotes)."""
    buf = f.read(1 << 12)
    per_row = max(1, len(buf) // max(1, buf.count(b"\n")))  # bytes per row, estimated
    want = max(1 << 12, per_row * batch_rows)
    eof = not buf
    while True:
        while len(buf) < want and not eof:
            more = f.read(want - len(buf))
            eof, buf = not more, buf + more
        if eof:
            if buf.strip():
                yield buf
            return
        cut = buf.rfind(b"\n") + 1
        # a quoted field may hold newlines: cut where the quotes before are balanced
        while cut > 0 and buf.count(b'"', 0, cut) % 2:
            cut = buf.rfind(b"\n", 0, cut - 1) + 1
        if cut <= 0:  # no row boundary yet: read a bigger block
            want = 2 * len(buf)
            continue
        yield buf[:cut]
        buf = buf[cut:]


def _arrays(names: Sequence[str]) -> str:
    """("x",) -> "array x"; ("x", "y") -> "arrays x, y"."""
    return f"array{'s' if len(names) > 1 else ''} {', '.join(names)}"


def read_npz(path: Path, required: Sequence[str], keep: Sequence[str] | None = None
             ) -> dict[str, np.ndarray]:
    """The arrays of an NPZ archive (only those in `keep`, when given); each of `required`
    must be there. Never unpickles anything.

    Raises:
        DataError: not a readable .npz archive, or a required array missing.
    """
    try:
        archive: Any = np.load(path, allow_pickle=False)  # never unpickle user files
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: expected an .npz archive with {_arrays(required)}")
        with archive:
            missing = [k for k in required if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing {_arrays(missing)} "
                                f"(found: {', '.join(archive.files) or 'none'})")
            return {k: archive[k] for k in archive.files if keep is None or k in keep}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({_first_line(e)})") from None


def open_table(path: Path, data: DataConfig | None = None) -> Table:
    """Open a CSV/Parquet/NPZ file for chunked reading; a CSV file with the separator and
    decimal comma of `data` (the model's training config), see `Table`.

    Raises:
        DataError: missing file, directory, unknown suffix, empty or unreadable file.
    """
    path = existing_file(path)  # a directory, device, FIFO or dangling link: refused
    if data is None:
        return Table(path)
    return Table(path, data.separator, decimal_comma=data.decimal_comma)

"""How a CSV file is written: its separator and whether numbers use a decimal comma.

The one place that decides it, for training (`engine.tables.read_table`) and for serving
(`engine.data.reader.Table`):

    fmt = csv_format(path, separator=None, decimal_comma=False)   # training: the config
    fmt = serving_format(header, stored_separator, decimal_comma=stored_decimal_comma)

The separator is detected from the header line when it is not set: the candidate (`,` `;`
tab `|`) seen most often outside quotes, `,` when none is. A header that reads as one column
with another candidate inside is an error naming the separator to set. A decimal comma
(`3,5`) is allowed only with a separator other than `,`.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fcnet_cli.errors import DataError

__all__ = ["SEPARATORS", "CsvFormat", "check_decimal_commas", "check_one_column", "csv_format",
           "decimal_points", "detect_separator", "header_line", "separator_setting",
           "serving_format"]

SEPARATORS = (",", ";", "\t", "|")  # detected from the header line, in this order on ties
_BOM = b"\xef\xbb\xbf"
# a cell that is a number written with a decimal comma: 3,5  -0,25  ,5
_COMMA_NUMBER = r"^\s*[-+]?\d*,\d+(?:[eE][-+]?\d+)?\s*$"


@dataclass(frozen=True)
class CsvFormat:
    """The separator of a CSV file and whether its numbers use a decimal comma."""

    separator: str = ","
    decimal_comma: bool = False


def separator_setting(sep: str) -> str:
    """How to write `sep` in the YAML file: data.separator: ";" (a tab as "\\t")."""
    return f"data.separator: {json.dumps(sep)}"


def header_line(path: Path) -> bytes:
    """The first line of a CSV or .csv.gz file, without a UTF-8 byte-order mark or newline."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            line = f.readline()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read csv ({str(e).strip() or type(e).__name__})"
                        ) from None
    return line.removeprefix(_BOM).rstrip(b"\r\n")


def _outside_quotes(line: bytes) -> bytes:
    """The line with every double-quoted part removed."""
    return re.sub(rb'"[^"]*"?', b"", line)


def detect_separator(line: bytes, preferred: str | None = None) -> str:
    """The separator of a header line: `preferred` if it occurs in it, else the candidate
    seen most often outside quotes, else `preferred` or ','."""
    bare = _outside_quotes(line)
    if preferred is not None and preferred.encode() in bare:
        return preferred
    counts = [(bare.count(s.encode()), -i, s) for i, s in enumerate(SEPARATORS)]
    n, _, best = max(counts)
    return best if n else (preferred or ",")


def check_one_column(names: list[str], sep: str, source: str) -> None:
    """DataError when the header read with `sep` is one column holding another separator."""
    if len(names) != 1:
        return
    other = detect_separator(names[0].encode())
    if other == sep or other.encode() not in names[0].encode():
        return
    shown = names[0] if len(names[0]) <= 60 else names[0][:57] + "..."
    raise DataError(f"{source}: the header reads as one column {shown!r} with "
                    f"{json.dumps(other)} inside (separator {json.dumps(sep)}); the file looks "
                    f"separated by {json.dumps(other)}: set {separator_setting(other)}")


def _checked(fmt: CsvFormat, source: str) -> CsvFormat:
    if fmt.decimal_comma and fmt.separator == ",":
        raise DataError(f"{source}: data.decimal_comma: true needs a separator other than "
                        f"',' (the file is ','-separated); set data.separator, or "
                        f"data.decimal_comma: false")
    return fmt


def csv_format(path: Path, separator: str | None, *, decimal_comma: bool) -> CsvFormat:
    """Training: the configured separator, or the one detected from the header line."""
    sep = separator if separator is not None else detect_separator(header_line(path))
    return _checked(CsvFormat(sep, decimal_comma), str(path))


def serving_format(line: bytes, separator: str | None, *, decimal_comma: bool) -> CsvFormat:
    """Predict / eval on a new file: the model's separator if the header holds it, else the
    one detected; its decimal comma wherever the separator is not ','."""
    sep = detect_separator(line, separator)
    return CsvFormat(sep, decimal_comma and sep != ",")


def decimal_points(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells that are numbers with a decimal comma ("3,5") rewritten as "3.5"; polars
    reads such a column as text when another cell in it is not a number."""
    text = [n for n, t in frame.schema.items() if t == pl.String]
    if not text:
        return frame
    return frame.with_columns(
        pl.when(pl.col(n).str.contains(_COMMA_NUMBER)).then(pl.col(n).str.replace(",", "."))
        .otherwise(pl.col(n)).alias(n) for n in text)


def check_decimal_commas(frame: pl.DataFrame, names: list[str], source: str) -> None:
    """DataError naming the first text column of `names` whose cells are all numbers with a
    decimal comma (read without data.decimal_comma, they would become categories)."""
    for name in names:
        s = frame[name].drop_nulls()
        if s.dtype == pl.String and s.len() and bool(s.str.contains(_COMMA_NUMBER).all()):
            raise DataError(f"{source}: column '{name}' holds numbers with a decimal comma "
                            f"(e.g. {s[0]!r}); set data.decimal_comma: true to read them as "
                            f"numbers, or list the column in data.categorical to keep it as "
                            f"text")

"""What a cell means, whatever type the reader inferred for its column.

A CSV reader decides a column's type from all of its cells: `True`/`False` is boolean until
one cell says `unknown`, `1`/`2`/`3` is an integer until one cell says `1.0`. The meaning of
a cell must not change with that, so every categorical column has a *form*, fixed when the
model is trained and stored with it, and each cell is mapped to one canonical text whatever
the dtype of the frame it arrives in:

    form "bool": `true`/`false` from Boolean, 1/0, or the spellings below (any case)
    form "int":  the integer as text: 1, 1.0, "1", " 1 " -> "1"
    form "text": the text with surrounding whitespace removed, matched exactly

Missing cells are polars nulls, float NaN, and empty or whitespace-only text (pandas None,
np.nan and pd.NA arrive as nulls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from fcnet_cli.engine.data.dates import DATE_PARTS

__all__ = ["FALSE_SPELLINGS", "FORMS", "TRUE_SPELLINGS", "Column", "canonical_expr",
           "describe_cell", "fit_form", "is_missing", "missing_counts", "missing_expr", "row_text"]

TRUE_SPELLINGS = ("true", "t", "yes", "y", "1", "1.0")
FALSE_SPELLINGS = ("false", "f", "no", "n", "0", "0.0")
FORMS = ("text", "bool", "int")
_TEXT_TYPES = (pl.String, pl.Categorical)


@dataclass
class Column:
    """One raw input column and how it becomes model inputs.

    numeric: one input. categorical: one 0/1 input per category, cells matched on their
    canonical text (`form`: text, bool or int; see `engine.cells`). date: three inputs,
    days since `origin`, month and weekday (see `engine.dates`).
    """

    name: str
    kind: Literal["numeric", "categorical", "date"]
    categories: list[str] = field(default_factory=list)  # categorical: one input each
    # imputation value (a date's: days since 1970-01-01); None: a missing cell is an error
    fill: float | str | None = None
    indicator: bool = False  # a 0/1 "was missing" input follows the column's inputs
    form: str = "text"  # categorical: how a cell becomes its canonical text
    origin: int | None = None  # date: days since 1970-01-01 of the earliest training date

    def input_names(self) -> list[str]:
        if self.kind == "numeric":
            names = [self.name]
        elif self.kind == "date":
            names = [f"{self.name}.{part}" for part in DATE_PARTS]
        else:
            names = [f"{self.name}={c}" for c in self.categories]
        return names + ([f"{self.name}_missing"] if self.indicator else [])


def describe_cell(value: Any) -> str:
    """A cell as the user wrote it: 'blue', 3.5, true — never a numpy repr."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return str(value.item() if isinstance(value, np.generic) else value)


def row_text(i: int, first_row: int, *, lines: bool) -> str:
    """Row `i` (0-based in the frame) as the user counts it; CSV rows also give the line."""
    n = first_row + i
    return f"row {n} (line {n + 1})" if lines else f"row {n}"


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in _TEXT_TYPES


def missing_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """True where the cell is missing: null, NaN (floats), empty or blank text."""
    e = pl.col(name)
    if dtype.is_float():
        return e.is_null() | e.is_nan()
    if _is_text(dtype):
        return e.is_null() | (e.cast(pl.String).str.strip_chars() == "")
    return e.is_null()


def is_missing(s: pl.Series) -> pl.Series:
    """`missing_expr` of one series."""
    return s.to_frame().select(missing_expr(s.name, s.dtype)).to_series()


def missing_counts(frame: pl.DataFrame, names: list[str]) -> dict[str, int]:
    """Missing cells per column, all columns in one query."""
    schema = frame.schema  # once: building it costs O(columns), so not once per column
    exprs = [missing_expr(n, schema[n]).sum().alias(n) for n in names]
    return dict(zip(names, frame.select(exprs).row(0) if names else (), strict=True))


def _number_text(f: pl.Expr) -> pl.Expr:
    """Float64 numbers as text: whole numbers without a fraction (3.0 -> "3")."""
    whole = f.is_finite() & (f == f.round())
    return pl.when(whole).then(f.cast(pl.Int64, strict=False).cast(pl.String)) \
        .otherwise(f.cast(pl.String))


def _stripped(e: pl.Expr) -> pl.Expr:
    t = e.cast(pl.String).str.strip_chars()
    return pl.when(t == "").then(None).otherwise(t)


def canonical_expr(col: Column, dtype: pl.DataType) -> pl.Expr:
    """The canonical text of each cell of categorical `col` (null when missing), for a frame
    column of type `dtype` (Boolean, integer, float or text)."""
    e = pl.col(col.name)
    out: pl.Expr
    if dtype == pl.Boolean:
        yes, no = ("1", "0") if col.form == "int" else ("true", "false")
        out = pl.when(e).then(pl.lit(yes)).when(e.not_()).then(pl.lit(no))
    elif dtype.is_numeric():
        f = e.cast(pl.Float64).fill_nan(None)
        if col.form == "bool":
            out = pl.when(f == 1).then(pl.lit("true")).when(f == 0).then(pl.lit("false")) \
                .otherwise(_number_text(f))
        else:
            out = _number_text(f)
    else:
        t = _stripped(e)
        if col.form == "bool":
            low = t.str.to_lowercase()
            out = pl.when(low.is_in(TRUE_SPELLINGS)).then(pl.lit("true")) \
                .when(low.is_in(FALSE_SPELLINGS)).then(pl.lit("false")).otherwise(t)
        elif col.form == "int":
            f = t.cast(pl.Float64, strict=False)
            out = pl.when(f.is_finite() & (f == f.round())).then(_number_text(f)).otherwise(t)
        else:
            out = t
    return out.alias(col.name)


def fit_form(present: pl.Series) -> str:
    """The form of a categorical column from its non-missing training cells."""
    dtype = present.dtype
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        f = present.cast(pl.Float64)
        return "int" if bool((f.is_finite() & (f == f.round())).all()) else "text"
    if not _is_text(dtype):
        return "text"
    low = present.cast(pl.String).str.strip_chars().str.to_lowercase()
    spelled = low.is_in(TRUE_SPELLINGS + FALSE_SPELLINGS)
    numbers = low.cast(pl.Float64, strict=False)
    if bool(spelled.all()) and bool(numbers.is_null().any()):  # some true/yes/no…, not 0/1 only
        return "bool"
    if bool((numbers.is_finite() & (numbers == numbers.round())).fill_null(False).all()):
        return "int"
    return "text"

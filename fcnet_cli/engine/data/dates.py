"""Date columns: parsed the same way from CSV text and from Parquet, and turned into numbers.

A date column is a Date/Datetime column (Parquet, data frames) or a text column whose cells
all read as ISO dates, `YYYY-MM-DD`, optionally followed by a time (`2024-03-01 12:30`,
`2024-03-01T12:30:00Z`). It becomes three numeric model inputs, never one-hot categories:

    <name>.days     days since the stored origin (the training split's earliest date)
    <name>.month    1..12
    <name>.weekday  0 = Monday .. 6 = Sunday

Only the calendar date counts: a time of day is ignored (in the time zone it is written in),
so a date later than any training date is simply a larger number.
"""

from __future__ import annotations

import polars as pl

__all__ = ["DATE_PARTS", "ISO_DATE", "date_expr", "date_inputs", "date_share", "is_date_dtype"]

DATE_PARTS = ("days", "month", "weekday")
ISO_DATE = (r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
            r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$")


def is_date_dtype(dtype: pl.DataType) -> bool:
    """A Date or Datetime column (any unit, any time zone)."""
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)


def date_expr(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """The cells of column `name` as pl.Date: null where missing or not an ISO date; None
    when the column's type cannot hold dates (numbers, booleans)."""
    e = pl.col(name)
    if dtype == pl.Date:
        return e
    if isinstance(dtype, pl.Datetime):
        return e.dt.date()
    if dtype not in (pl.String, pl.Categorical, pl.Null):
        return None
    t = e.cast(pl.String).str.strip_chars()
    iso = t.str.contains(ISO_DATE)
    return pl.when(iso).then(t.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False))


def date_share(present: pl.Series) -> float:
    """Fraction of non-missing text cells that are ISO dates (0 for other column types)."""
    if present.len() == 0 or is_date_dtype(present.dtype):
        return 1.0 if present.len() else 0.0
    expr = date_expr(present.name, present.dtype)
    if expr is None:
        return 0.0
    return float(present.to_frame().select(expr.is_not_null().mean()).item())


def date_inputs(name: str, day: pl.Expr, origin: int) -> list[pl.Expr]:
    """The three float32 inputs of a date column from its pl.Date cells `day` (no nulls)."""
    return [(day.cast(pl.Int64) - origin).cast(pl.Float32).alias(f"{name}.days"),
            day.dt.month().cast(pl.Float32).alias(f"{name}.month"),
            (day.dt.weekday() - 1).cast(pl.Float32).alias(f"{name}.weekday")]

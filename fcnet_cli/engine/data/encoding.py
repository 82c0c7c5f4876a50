"""The pieces of `tables.encode_frame`: raw table columns → model inputs (the one route).

Training, `eval`, `predict` and `load_model` all call `encode_frame`. Columns are taken by
name; categorical cells are matched on their canonical form (`cells.canonical_expr`), dates
become numbers (`dates`), missing cells are imputed or refused as the model was trained.
Categories training never saw encode as all zeros and are counted (`UnseenCategories`), or
refused under `data.unknown_categories: error`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fcnet_cli.engine.data.cells import Column, describe_cell, missing_expr, row_text
from fcnet_cli.engine.data.dates import date_expr, date_inputs
from fcnet_cli.errors import DataError

__all__ = ["UnseenCategories", "check_numeric", "column_of", "date_exprs", "numeric_expr",
           "refuse_missing", "unseen_categories"]

EXAMPLES = 3  # unseen values named per column


class UnseenCategories(dict[str, int]):
    """Cells per categorical column whose category training never saw (a dict column ->
    count), with the first few such values per column in `examples`."""

    def __init__(self) -> None:
        super().__init__()
        self.examples: dict[str, list[str]] = {}

    def add(self, other: UnseenCategories) -> UnseenCategories:
        """Count `other` in too (e.g. the next chunk of a file); returns self."""
        for name, n in other.items():
            self[name] = self.get(name, 0) + n
            seen = self.examples.setdefault(name, [])
            seen += [v for v in other.examples.get(name, []) if v not in seen]
            del seen[EXAMPLES + 1:]  # one more than shown: whether to write "…"
        return self

    def message(self, source: str) -> str:
        """One line naming the columns, their unseen values and how many rows hold them."""
        parts = []
        for name, n in self.items():
            examples = self.examples.get(name, [])
            values = ", ".join(map(repr, examples[:EXAMPLES]))
            more = ", …" if len(examples) > EXAMPLES else ""
            parts.append(f"'{name}' {values}{more} ({n} row{'s' if n != 1 else ''})")
        return (f"{source}: categories unseen in training, encoded as all zeros: "
                f"{'; '.join(parts)}")


def column_of(columns: list[Column], j: int) -> int:
    """Index of the column that model input `j` comes from."""
    widths = np.cumsum([len(c.input_names()) for c in columns])
    return int(np.searchsorted(widths, j, side="right"))


def unseen_categories(columns: list[Column], frame: pl.DataFrame, texts: dict[str, pl.Expr],
                      source: str, first_row: int, *, lines: bool, unknown: str
                      ) -> UnseenCategories:
    """Count (and under ``error`` refuse) cells whose category training never saw."""
    out = UnseenCategories()
    if not texts:
        return out
    cats = {c.name: c.categories for c in columns if c.name in texts}
    masks = {n: (t.is_not_null() & ~t.is_in(cats[n])).alias(n) for n, t in texts.items()}
    counts = frame.select([m.sum() for m in masks.values()]).row(0)
    for name, n in zip(masks, counts, strict=True):
        if not n:
            continue
        nul = frame.select(masks[name] & texts[name].str.contains("\x00", literal=True))
        if bool(nul.to_series().any()):  # training refuses them: only ever unseen here
            i = int(nul.to_series().arg_max() or 0)
            raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}, column '{name}': a "
                            f"text cell holds a NUL character (\\x00)")
        if unknown == "error":
            i = int(frame.select(masks[name].arg_max()).item())
            known = ", ".join(cats[name][:10]) + (", …" if len(cats[name]) > 10 else "")
            raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}, column '{name}': "
                            f"{describe_cell(frame[name][i])} is a category unseen in training "
                            f"(known: {known}); data.unknown_categories is error")
        out[name] = int(n)
        values = frame.select(texts[name].filter(masks[name]).unique(maintain_order=True)
                              .head(EXAMPLES + 1)).to_series()
        out.examples[name] = [str(v) for v in values.to_list()]
    return out


def numeric_expr(col: Column, dtype: pl.DataType) -> pl.Expr:
    e = pl.col(col.name)
    if dtype in (pl.String, pl.Categorical):
        e = e.cast(pl.String).str.strip_chars()
    e = e.cast(pl.Float64, strict=False).fill_nan(None)
    return e if col.fill is None else e.fill_null(float(col.fill))


def date_exprs(frame: pl.DataFrame, col: Column, source: str, first_row: int, *, lines: bool
                ) -> list[pl.Expr]:
    dtype = frame.schema[col.name]
    day = date_expr(col.name, dtype)
    if day is None:
        raise DataError(f"{source}: column '{col.name}' has type {dtype}, expected dates "
                        f"(YYYY-MM-DD)")
    bad = frame.select(day.is_null() & ~missing_expr(col.name, dtype)).to_series()
    if bool(bad.any()):
        i = int(bad.arg_max() or 0)
        raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}, column '{col.name}': "
                        f"{describe_cell(frame[col.name][i])} is not a date (YYYY-MM-DD)")
    if col.fill is not None:
        day = day.fill_null(pl.lit(int(float(col.fill))).cast(pl.Date))
    return date_inputs(col.name, day, int(col.origin or 0))


def refuse_missing(frame: pl.DataFrame, col: Column, source: str, first_row: int, *,
                   lines: bool) -> None:
    miss = frame.select(missing_expr(col.name, frame.schema[col.name])).to_series()
    i = int(miss.arg_max() or 0)
    raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}, column '{col.name}': empty "
                    f"cell (the model was trained with data.missing: error)")


def check_numeric(s: pl.Series, col: Column, source: str, first_row: int, *,
                  lines: bool) -> None:
    if s.dtype in (pl.String, pl.Categorical):
        text = s.cast(pl.String).str.strip_chars()
        parsed = text.cast(pl.Float64, strict=False)
        bad = parsed.is_null() & text.is_not_null() & (text != "")
        if bool(bad.any()):
            i = int(bad.arg_max() or 0)
            raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}, "
                            f"column '{col.name}': {describe_cell(s[i])} is not a number")
    elif not (s.dtype.is_numeric() or s.dtype == pl.Null):
        raise DataError(f"{source}: column '{col.name}' has type {s.dtype}, expected numbers")

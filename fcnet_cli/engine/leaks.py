"""Feature columns that look like leaks: one notice line each, naming how to drop them.

Two signs, checked once when the preprocessing is fitted (whole columns, polars queries, no
per-row Python):

- a row id: an integer column whose values are all distinct and sorted (up or down) in the
  file; a model can learn the file's order from it (e.g. a table sorted by class);
- the label itself: one column that alone predicts the target perfectly on the training
  split. For classification, a numeric column whose per-class value ranges do not overlap
  (thresholds on it separate every class), or a categorical one whose every category holds
  one class; for regression, a numeric column whose correlation with a target is ±1.
"""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl

from fcnet_cli.engine.tables import Column, Target

__all__ = ["MIN_ROWS", "leak_notices"]

MIN_ROWS = 10  # fewer training rows: a perfect split by chance is too likely to warn about
PERFECT_CORRELATION = 0.99999


def leak_notices(frame: pl.DataFrame, train: np.ndarray, columns: list[Column],
                 target: Target, y: np.ndarray, source: str) -> list[str]:
    """One warning line per suspicious feature column.

    Args:
        frame: the whole table, in file order.
        train: bool (N,), the training split's rows.
        columns: the fitted feature columns.
        target: the fitted target; ``y`` its values (N,) class indices or (N, T) numbers.
    """
    ids = [c.name for c in columns if _is_row_id(frame[c.name])]
    notes = [f"{source}: column '{n}' holds distinct integers in sorted order (a row id?); a "
             f"model can learn the file's order from it: drop it with {_drop(n)}" for n in ids]
    rest = [c for c in columns if c.name not in ids]
    if int(train.sum()) < MIN_ROWS or not rest:
        return notes
    rows = frame.filter(pl.Series(train))
    y_train = y[train]
    if target.task == "classification":
        perfect = _separating(rows, [c for c in rest if c.kind == "numeric"], y_train)
        perfect |= _one_class_each(rows, [c for c in rest if c.kind != "numeric"], y_train)
    else:
        perfect = _correlated(rows, [c for c in rest if c.kind == "numeric"], y_train)
    what = (f"the target '{target.columns[0]}'" if len(target.columns) == 1
            else "the target")
    notes += [f"{source}: column '{c.name}' alone predicts {what} perfectly on the training "
              f"split (a leak?); if it is not known when predicting, drop it with "
              f"{_drop(c.name)}" for c in rest if c.name in perfect]
    return notes


def _drop(name: str) -> str:
    plain = re.fullmatch(r"[A-Za-z_][\w.-]*", name) is not None
    return f"data.drop: [{name if plain else json.dumps(name)}]"


def _is_row_id(s: pl.Series) -> bool:
    if not s.dtype.is_integer() or s.len() < 3 or s.null_count():
        return False
    return (s.is_sorted() or s.is_sorted(descending=True)) and s.n_unique() == s.len()


def _numbers(name: str, dtype: pl.DataType) -> pl.Expr:
    e = pl.col(name)
    if dtype == pl.String:
        e = e.str.strip_chars()
    return e.cast(pl.Float64, strict=False).fill_nan(None)


def _separating(rows: pl.DataFrame, cols: list[Column], y: np.ndarray) -> set[str]:
    """Numeric columns whose value range per class overlaps no other class's range."""
    if not cols or len(np.unique(y)) < 2:
        return set()
    names = [c.name for c in cols]
    values = rows.select(_numbers(n, rows.schema[n]).alias(f"c{j}")
                         for j, n in enumerate(names)).with_columns(__y=pl.Series(y))
    ranges = values.group_by("__y").agg(
        *(pl.col(f"c{j}").min().alias(f"lo{j}") for j in range(len(names))),
        *(pl.col(f"c{j}").max().alias(f"hi{j}") for j in range(len(names))))
    out = set()
    for j, name in enumerate(names):
        r = ranges.select(f"lo{j}", f"hi{j}").drop_nulls().sort(f"lo{j}")
        if r.height < ranges.height:  # a class with no value in this column
            continue
        lo, hi = r[f"lo{j}"].to_numpy(), r[f"hi{j}"].to_numpy()
        if bool((hi[:-1] < lo[1:]).all()):
            out.add(name)
    return out


def _one_class_each(rows: pl.DataFrame, cols: list[Column], y: np.ndarray) -> set[str]:
    """Categorical columns whose every category holds one class (a handful of categories)."""
    if len(np.unique(y)) < 2:
        return set()
    labels = pl.Series("__y", y)
    out = set()
    for c in cols:
        pairs = pl.DataFrame({"v": rows[c.name].cast(pl.String), "__y": labels}).drop_nulls()
        groups = pairs.group_by("v").agg(pl.col("__y").n_unique())
        if 2 <= groups.height <= pairs.height // 2 and groups["__y"].max() == 1:
            out.add(c.name)
    return out


def _correlated(rows: pl.DataFrame, cols: list[Column], y: np.ndarray) -> set[str]:
    """Numeric columns whose Pearson correlation with a regression target is ±1."""
    y2 = np.asarray(y, np.float64).reshape(len(y), -1)  # (N, T)
    out = set()
    for c in cols:
        x = rows.select(_numbers(c.name, rows.schema[c.name])).to_series().to_numpy()
        x = np.asarray(x, np.float64)
        ok = np.isfinite(x)
        if ok.sum() < MIN_ROWS or np.ptp(x[ok]) == 0:
            continue
        for t in range(y2.shape[1]):
            yt = y2[ok, t]
            if np.ptp(yt) > 0 and abs(np.corrcoef(x[ok], yt)[0, 1]) >= PERFECT_CORRELATION:
                out.add(c.name)
    return out

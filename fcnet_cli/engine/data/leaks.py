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

from fcnet_cli.engine.data.tables import Column, Target

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
    mask, y_train = pl.Series(train), y[train]

    def train_values(c: Column) -> pl.Series:  # one column at a time: no copy of the table
        return frame[c.name].filter(mask)

    if target.task == "classification":
        classes = int(pl.Series(y_train).n_unique())
        perfect = {c.name for c in rest
                   if classes > 1 and _predicts(train_values(c), c.kind, y_train, classes)}
    else:
        perfect = {c.name for c in rest
                   if c.kind == "numeric" and _correlated(train_values(c), y_train)}
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


def _numbers(s: pl.Series) -> np.ndarray:
    """A numeric column's values as float64, NaN where empty."""
    if s.dtype == pl.String:
        s = s.str.strip_chars()
    return s.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()


def _separates(s: pl.Series, y: np.ndarray, classes: int) -> bool:
    """Whether the value ranges of the classes overlap nowhere (thresholds separate them)."""
    x = _numbers(s)
    ok = np.isfinite(x)
    ranges = pl.DataFrame({"v": x[ok], "y": y[ok]}).group_by("y").agg(
        lo=pl.col("v").min(), hi=pl.col("v").max()).sort("lo")
    if ranges.height != classes:  # a class with no value in this column
        return False
    lo, hi = ranges["lo"].to_numpy(), ranges["hi"].to_numpy()
    return bool((hi[:-1] < lo[1:]).all())


def _predicts(s: pl.Series, kind: str, y: np.ndarray, classes: int) -> bool:
    return _separates(s, y, classes) if kind == "numeric" else _one_class_each(s, y, classes)


def _one_class_each(s: pl.Series, y: np.ndarray, classes: int) -> bool:
    """Whether every category holds one class (for a handful of categories)."""
    pairs = pl.DataFrame({"v": s.cast(pl.String), "y": y}).drop_nulls()
    if pairs["y"].n_unique() != classes:  # a class with no value in this column
        return False
    groups = pairs.group_by("v").agg(pl.col("y").n_unique())
    return 2 <= groups.height <= pairs.height // 2 and groups["y"].max() == 1


def _correlated(s: pl.Series, y: np.ndarray) -> bool:
    """Whether the column's Pearson correlation with a regression target is ±1."""
    x = _numbers(s)
    y2 = np.asarray(y, np.float64).reshape(len(y), -1)  # (N, T)
    ok = np.isfinite(x)
    if ok.sum() < MIN_ROWS or np.ptp(x[ok]) == 0:
        return False
    return any(np.ptp(y2[ok, t]) > 0
               and abs(np.corrcoef(x[ok], y2[ok, t])[0, 1]) >= PERFECT_CORRELATION
               for t in range(y2.shape[1]))

"""Column selection, fitting a `Preprocessing` on a table's training rows, and encoding.

Everything runs as polars expressions over whole columns: no per-cell Python work except on
the error path, where the first offending cell is looked up to name its row, column and text.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np
import polars as pl

from fcnet_cli.config import DataConfig
from fcnet_cli.engine.data.cells import (
    canonical_expr,
    describe_cell,
    fit_form,
    is_missing,
    missing_counts,
    row_text,
)
from fcnet_cli.engine.data.dates import date_expr, date_share, is_date_dtype
from fcnet_cli.engine.data.labels import encode_labels, label_name, label_text
from fcnet_cli.engine.data.tables import Column, Target
from fcnet_cli.errors import DataError

__all__ = ["drop_missing_target", "encode_target", "fit_columns", "fit_target",
           "select_columns"]

MAX_AUTO_CLASSES = 50  # a numeric target with more distinct values asks for task: regression
NUMERIC_SHARE = 0.9  # a text column whose cells are ≥ 90 % numbers is a numeric column with typos
DATE_SHARE = 0.9  # the same for ISO dates


def _exists(names: Sequence[str], frame: pl.DataFrame, key: str, source: str) -> None:
    have = set(frame.columns)  # once: a lookup per name stays O(1) on a wide table
    for name in names:
        if name not in have:
            hint = difflib.get_close_matches(name, frame.columns, n=1)
            tail = (f"; did you mean '{hint[0]}'?" if hint
                    else f" (columns: {', '.join(frame.columns[:12])})")
            raise DataError(f"{source}: {key}: no column '{name}'{tail}")


def select_columns(frame: pl.DataFrame, cfg: DataConfig, source: str
                   ) -> tuple[list[str], list[str]]:
    """(feature columns, target columns) from `data.target/features/drop/categorical`."""
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    _exists(targets, frame, "data.target", source)
    for key in ("features", "drop", "categorical"):
        _exists(getattr(cfg, key) or [], frame, f"data.{key}", source)
    if cfg.features is not None:
        both = [t for t in targets if t in cfg.features]
        if both:
            raise DataError(f"{source}: data.features: '{both[0]}' is the target; remove it "
                            f"from data.features")
        features = [c for c in cfg.features if c not in cfg.drop]
    else:
        features = [c for c in frame.columns if c not in targets and c not in cfg.drop]
    if not features:
        raise DataError(f"{source}: no feature columns besides the target "
                        f"({', '.join(targets)}); the table has {len(frame.columns)} column(s)")
    if frame.height == 0:
        raise DataError(f"{source}: data set is empty (0 rows): the file has only a header")
    return features, targets


def _numeric_text(s: pl.Series, source: str, *, lines: bool, categorical_hint: bool) -> bool:
    """Whether a text column holds numbers; a few non-numbers among many is an error."""
    parsed = s.str.strip_chars().cast(pl.Float64, strict=False)
    present = ~is_missing(s)
    bad = present & parsed.is_null()
    n_bad, n_cells = int(bad.sum()), int(present.sum())
    if n_bad == 0 and n_cells:
        return True
    if n_cells and (n_cells - n_bad) / n_cells >= NUMERIC_SHARE:
        i = int(bad.arg_max() or 0)
        tail = "; fix the cell, or list the column in data.categorical" if categorical_hint else ""
        raise DataError(f"{source}: {row_text(i, 1, lines=lines)}, column '{s.name}': "
                        f"{describe_cell(s[i])} is not a number{tail}")
    return False


def _kind(s: pl.Series, cfg: DataConfig, source: str, *, lines: bool) -> str:
    if s.name in cfg.categorical or s.dtype == pl.Boolean:
        return "categorical"
    if is_date_dtype(s.dtype):
        return "date"
    if s.dtype.is_numeric():
        return "numeric"
    if s.dtype in (pl.String, pl.Categorical, pl.Null):
        if _date_text(s, source, lines=lines):
            return "date"
        return "numeric" if _numeric_text(s.cast(pl.String), source, lines=lines,
                                                    categorical_hint=True) \
            else "categorical"
    raise DataError(f"{source}: column '{s.name}' has type {s.dtype}; fcnet reads numbers, "
                    f"text, booleans and dates (convert it, or list it in data.drop)")


def _date_text(s: pl.Series, source: str, *, lines: bool) -> bool:
    """Whether a text column holds ISO dates; a few other cells among many is an error."""
    present = s.filter(~is_missing(s))
    share = date_share(present) if present.len() else 0.0
    if share == 1.0:
        return True
    if share >= DATE_SHARE:
        day = s.to_frame().select(date_expr(s.name, s.dtype)).to_series()  # type: ignore[arg-type]
        i = int((day.is_null() & ~is_missing(s)).arg_max() or 0)
        raise DataError(f"{source}: {row_text(i, 1, lines=lines)}, column '{s.name}': "
                        f"{describe_cell(s[i])} is not a date (YYYY-MM-DD); fix the cell, or "
                        f"list the column in data.categorical")
    return False


def _canonical(s: pl.Series, col: Column) -> pl.Series:
    """The canonical text of a categorical column's cells (`cells.canonical_expr`)."""
    return s.to_frame().select(canonical_expr(col, s.dtype)).to_series()


def _days(s: pl.Series) -> pl.Series:
    """A date column's cells as days since 1970-01-01 (Int64, null where missing)."""
    day = date_expr(s.name, s.dtype)
    assert day is not None  # the column was found to hold dates
    return s.to_frame().select(day.cast(pl.Int64)).to_series()


def _missing_error(frame: pl.DataFrame, features: list[str], source: str) -> None:
    """missing: error — one line with the count per column and the first rows."""
    parts = []
    for name in features:
        miss = is_missing(frame[name])
        n = int(miss.sum())
        if n:
            rows = (np.flatnonzero(miss.to_numpy())[:3] + 1).tolist()
            where = ", ".join(map(str, rows)) + (", …" if n > 3 else "")
            parts.append(f"'{name}' {n} (row{'s' if n > 1 else ''} {where})")
    if parts:
        raise DataError(f"{source}: missing values in {len(parts)} column(s): "
                        f"{'; '.join(parts)}; set data.missing to mean, median or "
                        f"most_frequent, or fix the file")


def fit_columns(frame: pl.DataFrame, train: np.ndarray, features: list[str], cfg: DataConfig,
                source: str, *, lines: bool) -> list[Column]:
    """Kinds, categories, imputation values and indicators, fitted on rows `train` (bool (N,))."""
    holes = missing_counts(frame, features)  # one pass over the table
    for name in features:
        if holes[name] == frame.height:
            raise DataError(f"{source}: column '{name}' is empty in all {frame.height} rows; "
                            f"add it to data.drop")
    kinds = {name: _kind(frame[name], cfg, source, lines=lines) for name in features}
    if cfg.missing == "error":
        _missing_error(frame, [n for n in features if holes[n]], source)
    mask = pl.Series(train)
    cols = []
    for name in features:
        if kinds[name] == "numeric" and cfg.missing == "error":
            cols.append(Column(name, "numeric"))  # nothing to fit: no per-row work
            continue
        s = frame[name].filter(mask)  # training rows only
        miss = is_missing(s)
        present = s.filter(~miss)
        if present.len() == 0:
            raise DataError(f"{source}: column '{name}' has no values in the training split; "
                            f"add it to data.drop")
        if kinds[name] == "numeric":
            col = Column(name, "numeric")
        elif kinds[name] == "date":
            present = _days(present)
            col = Column(name, "date", origin=int(present.min()))  # type: ignore[arg-type]
        else:
            col = Column(name, "categorical", form=fit_form(frame[name].filter(
                ~is_missing(frame[name]))))
            present = _canonical(present, col)
            col.categories = _categories(name, present, cfg, source)
        if cfg.missing != "error":
            col.fill = _fill_value(col, present, cfg.missing)
            col.indicator = cfg.missing_indicator and bool(miss.any())
        cols.append(col)
    return cols


def _categories(name: str, text: pl.Series, cfg: DataConfig, source: str) -> list[str]:
    cats = sorted(text.unique().to_list())
    if any("\x00" in c for c in cats if isinstance(c, str)):
        raise DataError(f"{source}: column '{name}': a text cell holds a NUL character (\\x00); "
                        f"clean the file")
    if len(cats) > cfg.max_categories:
        raise DataError(f"{source}: column '{name}' has {len(cats)} categories in the training "
                        f"split (data.max_categories is {cfg.max_categories}); if it is an id, "
                        f"add it to data.drop, otherwise raise data.max_categories")
    return cats


def _fill_value(col: Column, present: pl.Series, how: str) -> float | str:
    """The imputation value from the present training cells (canonical text for categories,
    days since 1970-01-01 for dates, rounded to a whole day)."""
    if col.kind == "date":
        return float(round(_number_fill(present, how)))
    if col.kind == "categorical":  # text has no mean: the most frequent category
        text = present
        counts = text.value_counts(sort=True)
        top = counts.filter(pl.col("count") == counts["count"].max())[text.name]
        return str(sorted(top.to_list())[0])
    return _number_fill(present, how)


def _number_fill(present: pl.Series, how: str) -> float:
    x = present.cast(pl.Float64, strict=False) if present.dtype == pl.String else present
    x = x.cast(pl.Float64)
    if how == "mean":
        return float(x.mean())  # type: ignore[arg-type]
    if how == "median":
        return float(x.median())  # type: ignore[arg-type]
    counts = x.value_counts(sort=True)
    top = counts.filter(pl.col("count") == counts["count"].max())[x.name]
    return float(top.cast(pl.Float64).min())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- target


def drop_missing_target(frame: pl.DataFrame, targets: list[str], how: str, source: str
                        ) -> tuple[pl.DataFrame, list[str]]:
    """`data.missing_target`: rows with an empty target cell are an error naming their count
    and first rows, or dropped (before splitting) with one notice saying how many."""
    miss = pl.Series([False] * frame.height)
    for name in targets:
        miss = miss | is_missing(frame[name])
    n = int(miss.sum())
    if not n:
        return frame, []
    empty = [t for t in targets if bool(is_missing(frame[t]).any())]
    what = (f"target '{empty[0]}'" if len(empty) == 1
            else f"target column(s) {', '.join(map(repr, empty))}")
    first = (np.flatnonzero(miss.to_numpy())[:3] + 1).tolist()
    rows = f"row{'s' if n > 1 else ''} {', '.join(map(str, first))}{', …' if n > 3 else ''}"
    if how == "error":
        raise DataError(f"{source}: {what} is empty in {n} row{'s' if n > 1 else ''} "
                        f"({rows}); set data.missing_target: drop to train without them, or "
                        f"fill them")
    if n == frame.height:
        raise DataError(f"{source}: {what} is empty in all {n} rows; nothing to train on")
    return frame.filter(~miss), [f"{source}: dropped {n} row{'s' if n > 1 else ''} whose "
                                 f"{what} is empty ({rows}; data.missing_target: drop)"]


def fit_target(frame: pl.DataFrame, targets: list[str], task: str | None, source: str, *,
               lines: bool) -> tuple[Target, np.ndarray]:
    """The target and its values for splitting: class indices (N,) or floats (N, T)."""
    for name in targets:
        if frame[name].dtype.is_nested():  # a list or struct has no class or value
            raise DataError(f"{source}: the target '{name}' has type {frame[name].dtype}; a "
                            f"target must hold numbers, text or booleans")
        miss = is_missing(frame[name])
        if bool(miss.any()):
            i = int(miss.arg_max() or 0)
            raise DataError(f"{source}: {row_text(i, 1, lines=lines)}: "
                            f"the target '{name}' is empty")
    if task == "regression":
        target = Target("regression", list(targets))
        return target, encode_target(target, frame, source, lines=lines, standardize=False)
    s = frame[targets[0]]
    fractional = s.dtype.is_float() and bool((s != s.round()).any())
    if task is None and s.dtype.is_numeric() and (fractional or s.n_unique() > MAX_AUTO_CLASSES):
        raise DataError(f"{source}: the target '{s.name}' holds {s.n_unique()} distinct "
                        f"numbers; set task: regression to predict them (or task: "
                        f"classification to treat each value as a class)")
    if s.dtype.is_numeric():  # numeric labels sort numerically (2 before 10)
        classes = [label_name(v) for v in sorted(s.unique().to_list())]
    else:
        classes = sorted(label_text(s, []).unique().to_list())
    target = Target("classification", [s.name], classes=classes)
    return target, encode_target(target, frame, source, lines=lines)


def encode_target(target: Target, frame: pl.DataFrame, source: str, first_row: int = 1, *,
                  lines: bool = False, standardize: bool = True) -> np.ndarray:
    """Class indices (N,) int64, or regression targets (N, T) float32 (standardized)."""
    _exists(target.columns, frame, "data.target", source)
    if target.task == "classification":
        s = frame[target.columns[0]]
        whole = s.dtype.is_integer() or (s.dtype.is_float() and bool((s == s.round()).all()))
        if whole and not s.has_nulls():  # integer labels (also 0.0/1.0): no text needed
            known = np.array([int(c) for c in target.classes if c.lstrip("-").isdigit()])
            v = s.cast(pl.Int64).to_numpy()
            pos = np.searchsorted(known, v).clip(0, max(len(known) - 1, 0))
            if len(known) == len(target.classes) and (known[pos] == v).all():
                return pos.astype(np.int64)
        return encode_labels(s, target.classes, source, first_row, lines=lines)
    out = []
    for name in target.columns:
        s = frame[name]
        if not s.dtype.is_numeric():
            parsed = s.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
            if bool((parsed.is_null() & s.is_not_null()).any()):
                i = int((parsed.is_null() & s.is_not_null()).arg_max() or 0)
                raise DataError(f"{source}: task: regression needs a numeric target; column "
                                f"'{name}', {row_text(i, first_row, lines=lines)} holds "
                                f"{describe_cell(s[i])}")
            s = parsed
        out.append(s.cast(pl.Float64).to_numpy())
    y = np.stack(out, axis=1)  # (N, T)
    _check_values(y, target.columns, frame, source, first_row, lines=lines)
    if standardize:
        y = (y - np.asarray(target.mean)) / np.asarray(target.std)
    return y.astype(np.float32)


MAX_TARGET = 1e30  # beyond it the standardization's squares leave float64's range


def _check_values(y: np.ndarray, names: list[str], frame: pl.DataFrame, source: str,
                  first_row: int, *, lines: bool) -> None:
    """Regression targets must be finite and at most `MAX_TARGET` in size."""
    bad = ~np.isfinite(y) | (np.abs(y) > MAX_TARGET)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}, target '{names[j]}': "
                        f"{describe_cell(frame[names[j]][i])} is not a usable value "
                        f"(regression targets must be finite and at most 1e30 in size; numbers "
                        f"beyond float32's ±3.4e38 read as inf)")

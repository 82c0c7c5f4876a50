"""What `fit` and `predict` accept, as one polars table: pandas and polars frames keep their
column types (text, booleans, missing cells), numpy arrays and lists become numeric columns
`x0`, `x1`, ... The table then goes through the engine's own column fitting and encoding.

scikit-learn's `validate_data` keeps `n_features_in_` and `feature_names_in_` and refuses what
no estimator takes (sparse or complex input, 1-D X, an empty table).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from sklearn.utils.validation import validate_data

from fcnet_cli.errors import DataError

__all__ = ["InputError", "as_table", "column_names", "frame_kind", "series"]


class InputError(DataError, ValueError):
    """X or y that cannot be used: the engine's one-line data message."""


def frame_kind(x: Any) -> str | None:
    """"polars", "pandas", or None for anything else (arrays, lists)."""
    if isinstance(x, pl.DataFrame):
        return "polars"
    if type(x).__module__.split(".")[0] == "pandas" and hasattr(x, "columns"):
        return "pandas"
    return None


def column_names(estimator: Any, n: int) -> list[str]:
    """The training table's column names: `feature_names_in_`, else x0, x1, ..."""
    names = getattr(estimator, "feature_names_in_", None)
    return [str(c) for c in names] if names is not None else [f"x{i}" for i in range(n)]


def as_table(estimator: Any, X: Any, *, reset: bool, allow_nan: bool, min_rows: int = 1
             ) -> pl.DataFrame:
    """X checked (and on `reset`, its width and names recorded) as a polars table of at least
    `min_rows` rows.

    Columns are named as in training: a frame's own names are checked by scikit-learn
    (same names, same order), then taken by position.
    """
    kind = frame_kind(X)
    if kind is None:
        X = validate_data(estimator, X, reset=reset, dtype=None, ensure_min_samples=min_rows,
                          ensure_all_finite="allow-nan" if allow_nan else True)
        assert isinstance(X, np.ndarray)
        names = column_names(estimator, X.shape[1])
        return pl.DataFrame([series(n, X[:, j]) for j, n in enumerate(names)])
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    if X.shape[0] < min_rows:
        raise InputError(f"X: found {X.shape[0]} sample(s) (shape={X.shape}) while a minimum "
                         f"of {min_rows} is required by {type(estimator).__name__}")
    names = column_names(estimator, X.shape[1])
    if kind == "polars":
        return X.rename(dict(zip(X.columns, names, strict=True)))
    return pl.DataFrame([series(n, X.iloc[:, j].to_numpy()) for j, n in enumerate(names)])


def _missing(v: Any) -> bool:
    """None, NaN, pandas' NA and NaT: an empty cell."""
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    try:
        return bool(v != v)  # NaN-like scalars (numpy floats, pd.NA raises, NaT)
    except (TypeError, ValueError):
        return type(v).__name__ in ("NAType", "NaTType")


def series(name: str, values: Any) -> pl.Series:
    """One column as polars: numbers stay numbers (NaN an empty cell in a float column);
    an object column becomes text, numbers or booleans by what its cells hold, with
    None / NaN / pd.NA as empty cells."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return pl.Series(name, values)
    if values.dtype.kind in "US":
        return pl.Series(name, values.astype(str))
    if values.dtype.kind == "c":
        raise InputError(f"X: column '{name}' holds complex numbers; fcnet reads numbers, "
                         f"text and booleans")
    if values.dtype.kind != "O":  # dates and times: the engine names what it cannot read
        return pl.Series(name, values)
    cells = [None if _missing(v) else v for v in values.tolist()]
    for i, v in enumerate(cells):
        if v is not None and type(v) not in (str, bool, int, float):
            try:
                cells[i] = float(v)  # Decimal, Fraction, ...: a number
            except (TypeError, ValueError) as e:
                raise TypeError(f"X: row {i + 1}, column '{name}': {e}") from None
    kinds = {type(v) for v in cells if v is not None}
    if kinds <= {bool}:
        return pl.Series(name, cells, dtype=pl.Boolean)
    if kinds <= {int, float}:
        return pl.Series(name, cells, dtype=pl.Float64)
    return pl.Series(name, [None if v is None else str(v) for v in cells], dtype=pl.String)

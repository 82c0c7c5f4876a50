"""Class labels: their names and the one label encoder (training, `eval`, `eval --data`).

A class is named by its text: numbers as `label_name` writes them (3.0 → "3"), text
stripped, booleans lower case; labels are matched to a model's classes by that name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from fcnet_cli.engine.data.cells import Column, canonical_expr, describe_cell, row_text
from fcnet_cli.errors import DataError

__all__ = ["encode_labels", "label_name", "label_text"]


def _as_text(s: pl.Series) -> pl.Series:
    """Target labels as text (booleans lower case, as their canonical form)."""
    return s.cast(pl.String).str.strip_chars() if s.dtype != pl.Boolean \
        else s.cast(pl.String).str.to_lowercase()


def label_name(v: float) -> str:
    """A numeric class label as text: 3.0 -> '3', 0.5 -> '0.5'."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def label_text(labels: pl.Series, classes: Sequence[str]) -> pl.Series:
    """Labels as the text the model's class names use: numbers as `label_name` names them
    (3.0 → "3"), text stripped; for a boolean target (classes false, true) every spelling of a
    boolean (True, yes, 1) as its canonical form."""
    if sorted(classes) == ["false", "true"]:
        form = Column(labels.name, "categorical", form="bool")
        return labels.to_frame().select(canonical_expr(form, labels.dtype)).to_series()
    if labels.dtype.is_numeric():
        return labels.map_elements(label_name, return_dtype=pl.String)
    return _as_text(labels)


def encode_labels(labels: pl.Series, classes: Sequence[str], source: str, first_row: int = 1,
                  *, lines: bool = False) -> np.ndarray:
    """Class indices (N,) int64 of labels matched to `classes` by name (`label_text`): the one
    label encoder of training, `eval` and `eval --data`. A missing or unknown label raises
    a DataError naming its row (`first_row` is the frame's first row as the user counts)."""
    text = label_text(labels, classes)
    if text.null_count():
        i = int(text.is_null().arg_max() or 0)
        raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}: missing label")
    index = text.replace_strict(list(classes), list(range(len(classes))), default=None,
                                return_dtype=pl.Int64)
    if index.null_count():
        i = int(index.is_null().arg_max() or 0)
        raise DataError(f"{source}: {row_text(i, first_row, lines=lines)}: label "
                        f"{describe_cell(labels[i])} is not a class the model knows "
                        f"({', '.join(list(classes)[:20])})")
    return index.to_numpy().astype(np.int64)

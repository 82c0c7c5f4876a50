"""The schema of a checkpoint's meta.json, checked on every load.

The hash in the run's manifest catches an edited meta.json inside a run; this schema catches
what no hash can (a checkpoint copied out of its run, or one written by hand): every value
the model computes with must be usable, so that a tampered file is refused with one line
naming the field instead of giving NaN, inf or constant predictions.

- normalization: ``scale`` finite and in [1e-20, 1e20], ``shift`` finite with |shift| <= 1e30,
  one of each encoded input (the model's inputs, or the numerical embedding's when the
  preprocessing has one: ``preprocessing.embedding.in_features``);
- preprocessing: ``input_divisor`` finite and > 0; each column a name (text, no NUL or line
  break, at most 1,000 characters), a known kind, at most `MAX_CATEGORIES` categories (text),
  a fill of the column's type (a finite number; text for a categorical column) or null;
- target: regression ``mean`` finite and ``std`` finite and > 0, one per target column;
  classification ``classes`` text, at most `MAX_CATEGORIES`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fcnet_cli.errors import CheckpointError

__all__ = ["MAX_CATEGORIES", "validate_meta"]

MAX_CATEGORIES = 100_000  # per column and for the classes; training refuses more long before
MAX_NAME = 1_000
SCALE_RANGE = (1e-20, 1e20)
MAX_SHIFT = 1e30
KINDS = ("numeric", "categorical", "date")


class _Bad(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _numbers(v: Any, field: str, n: int | None = None) -> list[float]:
    if not isinstance(v, list):
        raise _Bad(field, f"must be a list of numbers (got {type(v).__name__})")
    for i, x in enumerate(v):
        if not _number(x):
            raise _Bad(f"{field}[{i}]", f"must be a finite number (got {x!r})")
    if n is not None and len(v) != n:
        raise _Bad(field, f"has {len(v)} values, expected {n}")
    return v


def _name(v: Any, field: str) -> None:
    if not isinstance(v, str):
        raise _Bad(field, f"must be text (got {type(v).__name__})")
    if len(v) > MAX_NAME or any(c in v for c in "\x00\n\r"):
        raise _Bad(field, "must be at most 1000 characters, without NUL or line breaks")


def _names(v: Any, field: str, limit: int = MAX_CATEGORIES) -> None:
    if not isinstance(v, list):
        raise _Bad(field, f"must be a list of names (got {type(v).__name__})")
    if len(v) > limit:
        raise _Bad(field, f"has {len(v)} entries (at most {limit})")
    for i, x in enumerate(v):
        if not isinstance(x, str) or "\x00" in x:
            raise _Bad(f"{field}[{i}]", f"must be text without NUL (got {x!r})")


def _normalization(v: Any, field: str, n: int) -> None:
    if not isinstance(v, dict):
        raise _Bad(field, "must be an object with kind, shift and scale")
    for i, x in enumerate(_numbers(v.get("scale"), f"{field}.scale", n)):
        if not SCALE_RANGE[0] <= x <= SCALE_RANGE[1]:
            raise _Bad(f"{field}.scale[{i}]", f"must be in [1e-20, 1e20] (got {x!r})")
    for i, x in enumerate(_numbers(v.get("shift"), f"{field}.shift", n)):
        if abs(x) > MAX_SHIFT:
            raise _Bad(f"{field}.shift[{i}]", f"must be at most 1e30 in size (got {x!r})")


def _column(c: Any, field: str) -> None:
    if not isinstance(c, dict):
        raise _Bad(field, "must be an object")
    _name(c.get("name"), f"{field}.name")
    kind = c.get("kind")
    if kind not in KINDS:
        raise _Bad(f"{field}.kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")
    _names(c.get("categories", []), f"{field}.categories")
    fill = c.get("fill")
    if fill is not None:
        ok = isinstance(fill, str) if kind == "categorical" else _number(fill)
        if not ok:
            want = "text" if kind == "categorical" else "a finite number"
            raise _Bad(f"{field}.fill", f"must be {want} or null (got {fill!r})")
    if type(c.get("indicator", False)) is not bool:
        raise _Bad(f"{field}.indicator", "must be true or false")


def _target(t: Any, field: str) -> None:
    if not isinstance(t, dict):
        raise _Bad(field, "must be an object")
    _names(t.get("columns", []), f"{field}.columns", MAX_NAME)
    _names(t.get("classes", []), f"{field}.classes")
    if t.get("task") != "regression":
        return
    n = len(t.get("columns") or []) or None
    _numbers(t.get("mean"), f"{field}.mean", n)
    for i, x in enumerate(_numbers(t.get("std"), f"{field}.std", n)):
        if x <= 0:
            raise _Bad(f"{field}.std[{i}]", f"must be > 0 (got {x!r})")
    if not t.get("std"):
        raise _Bad(f"{field}.std", "must list one standard deviation per target")


def _preprocessing(p: Any, n: int) -> None:
    if not isinstance(p, dict):
        raise _Bad("preprocessing", "must be an object")
    d = p.get("input_divisor", 1.0)
    if not _number(d) or d <= 0:
        raise _Bad("preprocessing.input_divisor", f"must be a finite number > 0 (got {d!r})")
    cols = p.get("columns")
    if not isinstance(cols, list):
        raise _Bad("preprocessing.columns", "must be a list")
    for i, c in enumerate(cols):
        _column(c, f"preprocessing.columns[{i}]")
    _normalization(p.get("normalization"), "preprocessing.normalization", n)
    _target(p.get("target"), "preprocessing.target")


def _encoded_inputs(meta: dict[str, Any], n: int) -> int:
    """The normalization's width: `n` model inputs, or the embedding's input width (the
    embedding's own values are checked where it is read, `engine.data.embeddings`)."""
    p = meta.get("preprocessing")
    emb = p.get("embedding") if isinstance(p, dict) else None
    if emb is None:
        return n
    m = emb.get("in_features") if isinstance(emb, dict) else None
    if type(m) is not int or m < 1:
        raise _Bad("preprocessing.embedding.in_features", f"must be a positive integer "
                                                          f"(got {m!r})")
    return m


def validate_meta(meta: dict[str, Any], path: Path) -> None:
    """Raise CheckpointError ``"<path>: <field>: <problem>"`` for the first unusable field."""
    try:
        n = meta.get("in_features")
        if type(n) is not int or n < 1:
            raise _Bad("in_features", f"must be a positive integer (got {n!r})")
        _names(meta.get("classes"), "classes")
        n = _encoded_inputs(meta, n)
        if meta.get("normalization") is not None:
            _normalization(meta["normalization"], "normalization", n)
        if "preprocessing" in meta:
            _preprocessing(meta["preprocessing"], n)
    except _Bad as e:
        raise CheckpointError(f"{path}: {e}") from None

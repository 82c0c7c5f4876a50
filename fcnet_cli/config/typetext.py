"""Field types and values as a user writes them in YAML: ``int ≥ 1``, ``float in [0, 1)``,
``one of: sgd, adam``, ``list of int``, ``true or false``, ``null`` (for `fcnet schema` and
`validate --explain`)."""

from __future__ import annotations

import json
import types
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from pydantic.fields import FieldInfo

__all__ = ["type_text", "value_text"]

HUGE = 1_000_000  # upper bounds at or above this are safety limits, not advice: not shown
_NAMES = {int: "int", float: "float", str: "text", bool: "true or false"}


def value_text(value: Any) -> str:
    """A value as YAML writes it: null, true, 0.01, digits, [128, 64]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and value.strip() == value else json.dumps(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(", ", ": "))
    return repr(value)


def type_text(field: FieldInfo) -> str:
    """The field's type with its bounds, e.g. ``int ≥ 1`` or ``float in (0, 1)``."""
    return _text(field.annotation, _bounds(field.metadata))


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        for cls, key in ((Gt, "gt"), (Ge, "ge"), (Lt, "lt"), (Le, "le"),
                         (MaxLen, "max_length")):
            if isinstance(m, cls):
                out[key] = getattr(m, key)
    return out


def _text(ann: Any, bounds: dict[str, Any]) -> str:
    origin = get_origin(ann)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in get_args(ann))
    if origin in (Union, types.UnionType):
        args = get_args(ann)
        parts = [_text(a, bounds) for a in args if a is not type(None)]
        if type(None) in args:  # a choice list takes null as one more choice
            if parts[0].startswith("one of: "):
                parts[0] += ", null"
            else:
                parts.append("null")
        # "one of: none, balanced; or list of float": the list's commas stay its own
        return "".join(p if i == 0 else ("; or " if parts[i - 1].startswith("one of: ")
                                        else " or ") + p for i, p in enumerate(parts))
    if origin in (list, tuple):
        inner = get_args(ann)[0] if get_args(ann) else Any
        most = bounds.get("max_length")
        return f"list of {_text(inner, {})}" + (f", at most {most}" if most else "")
    name = _NAMES.get(ann, getattr(ann, "__name__", str(ann)))
    return _ranged(name, bounds) if ann in (int, float) else name


def _ranged(name: str, b: dict[str, Any]) -> str:
    """int/float with their bounds: ``int ≥ 1``, ``float > 0``, ``float in [0, 1)``."""
    low, low_open = (b["gt"], True) if "gt" in b else (b.get("ge"), False)
    high, high_open = (b["lt"], True) if "lt" in b else (b.get("le"), False)
    if high is not None and high >= HUGE:
        high = None
    if name == "int":  # integers: closed bounds read better (> 0 is ≥ 1)
        low = None if low is None else low + 1 if low_open else low
        high = None if high is None else high - 1 if high_open else high
        low_open = high_open = False
    if low is not None and high is not None:
        return f"{name} in {'(' if low_open else '['}{_num(low)}, {_num(high)}" \
               f"{')' if high_open else ']'}"
    if low is not None:
        return f"{name} {'>' if low_open else '≥'} {_num(low)}"
    if high is not None:
        return f"{name} {'<' if high_open else '≤'} {_num(high)}"
    return name


def _num(x: float) -> str:
    return format(x, "g")

"""The fitted preprocessing as ONNX nodes: raw table columns in, the encoded matrix out.

`preprocessing_model(prep, output, opset)` builds a graph with one input per raw column,
named as the column, shape (N, 1), in the convention of scikit-learn's ONNX converters:

- numeric column: float32, NaN = missing → imputed with the stored fill value (Where +
  IsNaN), divided by the input divisor, plus a 0/1 "was missing" column when fitted;
- categorical column: string, empty (or blank) string = missing (so are the CSV reader's
  null spellings NA, N/A, null, ... unless one is a category) → a category index by `ai.onnx.ml`
  LabelEncoder (default -1: an unseen category), then one-hot by Equal against 0..C-1, so an
  unseen category is all zeros, as `Preprocessing.encode` does; the missing cell takes the
  fill category's index;
- date column: float32 days since 1970-01-01, NaN = missing → days since the stored origin,
  month (1-12) and weekday (0 = Monday) in int64 arithmetic (civil-from-days).

Its one output (N, F) float32 is `Preprocessing.encode`'s matrix, columns in
`prep.input_names` order; `describe_inputs(prep)` says the same in words for the sidecar.
Each column kind (and categorical form) is one small function below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fcnet_cli.engine.data.tables import (
    FALSE_SPELLINGS,
    NULL_VALUES,
    TRUE_SPELLINGS,
    Column,
    Preprocessing,
)

__all__ = ["ML_OPSET", "OPSET", "category_keys", "describe_inputs", "free_prefix",
           "preprocessing_model"]

ML_OPSET = 3  # ai.onnx.ml: LabelEncoder-2 (keys_strings → values_int64s, default_int64)
OPSET = 20  # ai.onnx: RegexFullMatch (blank cells) is new in opset 20
EPOCH_SHIFT = 719_468  # days from 0000-03-01 to 1970-01-01 (civil-from-days)


def free_prefix(names: list[str], base: str = "fcnet.") -> str:
    """A prefix no name in `names` starts with, for the graph's internal value names."""
    prefix = base
    while any(n.startswith(prefix) for n in names):
        prefix = "_" + prefix
    return prefix


def _case_variants(word: str) -> list[str]:
    return list(dict.fromkeys([word, word.lower(), word.title(), word.upper()]))


def _bool_keys(col: Column) -> dict[str, int]:
    """"bool" form: every spelling (lower/Title/UPPER) of true and false → its category."""
    keys: dict[str, int] = {}
    for canonical, words in (("true", TRUE_SPELLINGS), ("false", FALSE_SPELLINGS)):
        if canonical in col.categories:
            i = col.categories.index(canonical)
            keys.update({v: i for w in words for v in _case_variants(w)})
    return keys


def _int_keys(col: Column) -> dict[str, int]:
    """"int" form: integer-coded categories, "3" and "3.0" both → category "3"."""
    keys: dict[str, int] = {}
    for i, c in enumerate(col.categories):
        keys[c] = i
        try:
            if float(c).is_integer():
                keys[f"{int(float(c))}.0"] = i
        except ValueError:
            pass
    return keys


def _text_keys(col: Column) -> dict[str, int]:
    """"text" form: the exact category text."""
    return {c: i for i, c in enumerate(col.categories)}


KEY_FORMS: dict[str, Callable[[Column], dict[str, int]]] = {
    "text": _text_keys, "bool": _bool_keys, "int": _int_keys}


def missing_keys(col: Column) -> list[str]:
    """Strings read as a missing cell: "" and the CSV null spellings that are not categories."""
    return [k for k in ["", *NULL_VALUES] if k not in col.categories]


def category_keys(col: Column) -> dict[str, int]:
    """The LabelEncoder's table: accepted string → category index (absent: unseen, -1)."""
    return KEY_FORMS.get(col.form, _text_keys)(col)


def fill_index(col: Column) -> int:
    """The category a missing cell takes; -1 (all zeros, as unseen) without a fill."""
    return -1 if col.fill is None else category_keys(col).get(str(col.fill), -1)


class _Graph:
    """Nodes and constants of the preprocessing graph; internal names under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}.{len(self.nodes) + len(self.inits)}"

    def const(self, value: Any, dtype: Any) -> str:
        name = self.name("const")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, domain=domain,
                                           **attrs))
        return out

    def to_float(self, x: str) -> str:
        return self.op("Cast", [x], to=TensorProto.FLOAT)


def _numeric(g: _Graph, col: Column, prep: Preprocessing) -> list[str]:
    """float32 (N, 1), NaN = missing → [value] (+ [was missing])."""
    x = col.name
    miss = g.op("IsNaN", [x])
    if col.fill is not None:
        x = g.op("Where", [miss, g.const([[float(col.fill)]], np.float32), x])
    if prep.input_divisor != 1.0:  # as `encode`: divided in float64, then rounded to float32
        wide = g.op("Cast", [x], to=TensorProto.DOUBLE)
        x = g.to_float(g.op("Div", [wide, g.const(prep.input_divisor, np.float64)]))
    return [x] + ([g.to_float(miss)] if col.indicator else [])


def _categorical(g: _Graph, col: Column, prep: Preprocessing) -> list[str]:
    """string (N, 1), "" = missing → one-hot (N, C) (+ [was missing])."""
    keys = category_keys(col)
    index = g.op("LabelEncoder", [col.name], domain="ai.onnx.ml",
                 keys_strings=list(keys), values_int64s=list(keys.values()), default_int64=-1)
    gone = missing_keys(col)
    spelled = g.op("LabelEncoder", [col.name], domain="ai.onnx.ml", keys_strings=gone,
                   values_int64s=[1] * len(gone), default_int64=0)
    blank = g.op("RegexFullMatch", [col.name], pattern=r"\s*")  # "" or whitespace only
    miss = g.op("Or", [blank, g.op("Cast", [spelled], to=TensorProto.BOOL)])
    index = g.op("Where", [miss, g.const([[fill_index(col)]], np.int64), index])
    rng = g.const(np.arange(len(col.categories)).reshape(1, -1), np.int64)  # (1, C)
    parts = [g.to_float(g.op("Equal", [index, rng]))]  # (N, C); unseen (-1): all zeros
    return parts + ([g.to_float(miss)] if col.indicator else [])


def _floor_div(g: _Graph, a: str, b: int) -> str:
    """Integer floor division a // b (b > 0): (a - a mod b) / b, exact in any rounding."""
    rem = g.op("Mod", [a, g.const(b, np.int64)], fmod=0)  # sign of the divisor: 0..b-1
    return g.op("Div", [g.op("Sub", [a, rem]), g.const(b, np.int64)])


def _month(g: _Graph, days: str) -> str:
    """Month 1-12 of int64 days since 1970-01-01 (H. Hinnant's civil_from_days)."""
    z = g.op("Add", [days, g.const(EPOCH_SHIFT, np.int64)])
    era = _floor_div(g, z, 146_097)
    doe = g.op("Sub", [z, g.op("Mul", [era, g.const(146_097, np.int64)])])  # [0, 146096]
    t = g.op("Sub", [doe, _floor_div(g, doe, 1460)])
    t = g.op("Add", [t, _floor_div(g, doe, 36_524)])
    t = g.op("Sub", [t, _floor_div(g, doe, 146_096)])
    yoe = _floor_div(g, t, 365)  # [0, 399]
    start = g.op("Add", [g.op("Mul", [yoe, g.const(365, np.int64)]), _floor_div(g, yoe, 4)])
    doy = g.op("Sub", [doe, g.op("Sub", [start, _floor_div(g, yoe, 100)])])  # [0, 365]
    five = g.op("Add", [g.op("Mul", [doy, g.const(5, np.int64)]), g.const(2, np.int64)])
    mp = _floor_div(g, five, 153)  # [0, 11], March = 0
    march_on = g.op("Less", [mp, g.const(10, np.int64)])
    return g.op("Where", [march_on, g.op("Add", [mp, g.const(3, np.int64)]),
                          g.op("Sub", [mp, g.const(9, np.int64)])])


def _date(g: _Graph, col: Column, prep: Preprocessing) -> list[str]:
    """float32 days since 1970-01-01 (N, 1), NaN = missing → [days since origin, month,
    weekday] (+ [was missing])."""
    x = col.name
    miss = g.op("IsNaN", [x])
    if col.fill is not None:
        x = g.op("Where", [miss, g.const([[float(col.fill)]], np.float32), x])
    else:  # no imputation: 0 keeps the integer ops defined; the days column stays NaN below
        x = g.op("Where", [miss, g.const([[0.0]], np.float32), x])
    days = g.op("Cast", [g.op("Floor", [x])], to=TensorProto.INT64)
    origin = int(col.origin or 0)
    since = g.to_float(g.op("Sub", [days, g.const(origin, np.int64)]))
    if col.fill is None:
        since = g.op("Where", [miss, g.const([[np.nan]], np.float32), since])
    weekday = g.op("Mod", [g.op("Add", [days, g.const(3, np.int64)]), g.const(7, np.int64)],
                   fmod=0)  # 1970-01-01 was a Thursday (3)
    parts = [since, g.to_float(_month(g, days)), g.to_float(weekday)]
    return parts + ([g.to_float(miss)] if col.indicator else [])


KINDS: dict[str, Callable[[_Graph, Column, Preprocessing], list[str]]] = {
    "numeric": _numeric, "categorical": _categorical, "date": _date}


def _input(col: Column) -> onnx.ValueInfoProto:
    dtype = TensorProto.STRING if col.kind == "categorical" else TensorProto.FLOAT
    return helper.make_tensor_value_info(col.name, dtype, ["batch", 1])


def preprocessing_model(prep: Preprocessing, output: str, opset: int, ir_version: int,
                        prefix: str) -> onnx.ModelProto:
    """Raw columns (one (N, 1) input each) → `output` (N, F) float32, `encode`'s matrix."""
    g = _Graph(prefix)
    parts = [p for col in prep.columns for p in KINDS[col.kind](g, col, prep)]
    g.nodes.append(helper.make_node("Concat", parts, [output], name=f"{prefix}concat", axis=1))
    graph = helper.make_graph(
        g.nodes, "fcnet_preprocessing", [_input(c) for c in prep.columns],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", prep.in_features])],
        initializer=g.inits)
    return helper.make_model(graph, ir_version=ir_version, opset_imports=[
        helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)])


def describe_inputs(prep: Preprocessing) -> list[dict[str, Any]]:
    """One sidecar entry per graph input: name, dtype, kind, missing convention, fill, ..."""
    return [_describe(c) for c in prep.columns]


def _iso(days: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat()


def _describe(col: Column) -> dict[str, Any]:
    d: dict[str, Any] = {"name": col.name, "shape": ["batch", 1], "kind": col.kind}
    if col.kind == "categorical":
        keys = category_keys(col)
        d |= {"dtype": "string", "form": col.form, "categories": list(col.categories),
              "accepted": {k: col.categories[i] for k, i in keys.items()},
              "missing": "empty or blank string (also " + ", ".join(NULL_VALUES[1:]) + ")",
              "whitespace": "matched exactly: strip spaces around the text before feeding it",
              "unseen": "a string not in `accepted` encodes as all zeros (no error)"}
    else:
        d |= {"dtype": "float32", "missing": "NaN"}
    d["fill"] = col.fill
    if col.kind == "date":
        origin = int(col.origin or 0)
        d |= {"unit": "days since 1970-01-01 (fractions are floored)", "origin": origin,
              "origin_date": _iso(origin),
              "computes": "days since origin, month (1-12), weekday (0 = Monday)"}
        if col.fill is not None:
            d["fill_date"] = _iso(int(float(col.fill)))
    if col.fill is None:
        d["missing"] += (": not expected (trained with data.missing: error); "
                         + ("encoded as unseen" if col.kind == "categorical"
                            else "NaN outputs"))
    d |= {"indicator": col.indicator, "encoded_as": col.input_names()}
    return d

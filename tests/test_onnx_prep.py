"""The preprocessing ONNX graph alone (no training): each column kind and categorical form
run in onnxruntime against `Preprocessing.encode` or hand-computed values."""

import datetime as dt
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from fcnet_cli.engine.data.tables import Column, Normalization, Preprocessing, Target
from fcnet_cli.serve.onnx_prep import (
    category_keys,
    describe_inputs,
    free_prefix,
    preprocessing_model,
)

ort = pytest.importorskip("onnxruntime")


def _prep(columns: list[Column], divisor: float = 1.0) -> Preprocessing:
    n = len([name for c in columns for name in c.input_names()])
    return Preprocessing(columns, Normalization("none", torch.zeros(n), torch.ones(n)),
                         Target("classification", ["y"], ["a", "b"]), divisor, "most_frequent")


def _run(prep: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's (N, F) output for per-column inputs given as 1-D arrays."""
    import onnx

    model = preprocessing_model(prep, "encoded", 20, 10, "fcnet.")
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.reshape(-1, 1) for k, v in feeds.items()})[0]


def test_numeric_and_text_match_encode() -> None:
    prep = _prep([
        Column("size", "numeric", fill=2.5, indicator=True),
        Column("color", "categorical", ["blue", "red"], fill="red", indicator=True),
        Column("shape", "categorical", ["round", "square"]),  # no fill: missing is unseen
        Column("weight", "numeric")])
    frame = pl.DataFrame({"size": [1.0, None, 3.25, 4.0], "color": ["blue", None, "green", "  "],
                          "shape": ["round", "square", "round", None],
                          "weight": [0.5, 1.5, -2.0, 1e6]})
    expected, _ = prep.encode(frame.with_columns(pl.col("shape").fill_null("round")))
    expected[3, 5:7] = 0  # the graph cannot refuse a missing cell: it encodes as unseen
    got = _run(prep, {
        "size": np.array([1, np.nan, 3.25, 4], np.float32),
        "color": np.array(["blue", "", "green", "  "], object),
        "shape": np.array(["round", "square", "round", ""], object),
        "weight": np.array([0.5, 1.5, -2.0, 1e6], np.float32)})
    np.testing.assert_array_equal(got, expected)
    assert got[2, 2:5].tolist() == [0, 0, 0]  # unseen "green": all zeros, not missing
    assert got[1, 2:5].tolist() == got[3, 2:5].tolist() == [0, 1, 1]  # empty, blank: missing


def test_input_divisor_divides_numbers_only() -> None:
    prep = _prep([Column("p", "numeric")], divisor=255.0)
    got = _run(prep, {"p": np.array([0, 1, 128, 255], np.float32)})
    expected = np.array([0, 1, 128, 255], np.float32) / np.float32(255)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-7)


def test_bool_form_accepts_every_spelling() -> None:
    col = Column("smoker", "categorical", ["false", "true"], fill="false", form="bool")
    truth = ["true", "True", "TRUE", "t", "T", "yes", "Yes", "YES", "y", "1", "1.0"]
    falsity = ["false", "False", "FALSE", "f", "no", "NO", "n", "0", "0.0"]
    other = ["", " \t", "maybe"]  # missing, blank (missing), not a boolean (unseen)
    cells = truth + falsity + other
    got = _run(_prep([col]), {"smoker": np.array(cells + ["NA", " true"], object)})
    expected, _ = _prep([col]).encode(pl.DataFrame({"smoker": cells}))
    np.testing.assert_array_equal(got[:len(cells)], expected)
    assert got[:11].tolist() == [[0, 1]] * 11
    assert got[11:22].tolist() == [[1, 0]] * 11  # "" and blank: missing → the fill, false
    assert got[22].tolist() == [0, 0]
    assert got[23].tolist() == [1, 0]  # the CSV reader's null spelling: missing too
    assert got[24].tolist() == [0, 0]  # not stripped inside the graph (the sidecar says so)


def test_int_form_accepts_float_spellings() -> None:
    col = Column("pclass", "categorical", ["1", "2", "3"], form="int")
    cells = ["1", "2.0", "3", "3.0", "4", "1.5"]
    got = _run(_prep([col]), {"pclass": np.array(cells, object)})
    np.testing.assert_array_equal(got, _prep([col]).encode(pl.DataFrame({"pclass": cells}))[0])
    assert got.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert category_keys(col) == {"1": 0, "1.0": 0, "2": 1, "2.0": 1, "3": 2, "3.0": 2}


def _civil(days: int) -> tuple[int, int]:
    d = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    return d.month, d.weekday()


def test_date_month_and_weekday_match_the_calendar() -> None:
    """Days since 1970-01-01 from year 1 to 9999 (leap days, centuries, before 1970)."""
    col = Column("day", "date", fill=0.0, origin=10_957)  # origin 2000-01-01
    rng = np.random.default_rng(0)
    days = np.concatenate([rng.integers(-719_162, 2_932_896, 4000),
                           [-719_162, -1, 0, 59, 60, 11_016, 11_017, 2_932_896]])
    prep = SimpleNamespace(columns=[col], input_divisor=1.0, in_features=3)
    got = _run(prep, {"day": np.append(days, np.nan).astype(np.float32)})
    big = np.abs(days) >= 2 ** 24  # float32 holds every day up to 2**24 exactly
    assert not big.any()
    assert got[:-1, 0].tolist() == (days - 10_957).astype(np.float32).tolist()
    assert [tuple(r) for r in got[:-1, 1:].astype(int).tolist()] == [_civil(int(d)) for d in days]
    assert got[-1].tolist() == [-10_957, 1, 3]  # missing → the fill, 1970-01-01 (a Thursday)


def test_describe_inputs_and_free_prefix() -> None:
    cols = [Column("age", "numeric", fill=30.0, indicator=True),
            Column("city", "categorical", ["Oslo", "Rome"], fill="Rome")]
    d = describe_inputs(_prep(cols))
    assert [(x["name"], x["dtype"], x["fill"]) for x in d] == [
        ("age", "float32", 30.0), ("city", "string", "Rome")]
    assert d[0]["encoded_as"] == ["age", "age_missing"]
    assert d[1]["accepted"] == {"Oslo": "Oslo", "Rome": "Rome"}
    assert free_prefix(["age", "fcnet.x"]) == "_fcnet."


def test_date_matches_encode() -> None:
    col = Column("day", "date", fill=19_000.0, indicator=True, origin=18_000)
    text = ["1969-12-31", "2000-02-29", "2024-03-01", None, "1900-03-01"]
    expected, _ = _prep([col]).encode(pl.DataFrame({"day": text}))
    days = [(dt.date.fromisoformat(t) - dt.date(1970, 1, 1)).days if t else np.nan for t in text]
    got = _run(_prep([col]), {"day": np.array(days, np.float32)})
    np.testing.assert_array_equal(got, expected)
    assert got[3].tolist() == [1000, 1, 5, 1]  # the fill, 2022-01-08 (a Saturday); missing

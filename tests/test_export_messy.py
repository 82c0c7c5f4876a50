"""The ONNX graph of a model of each messy table, fed the RAW rows of a new CSV (text read as
text, booleans and integer categories spelled differently, blank and empty cells, an unseen
category, dates as days since 1970-01-01), agrees with `fcnet predict` on that file."""

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from messy_tables import CARS, MESSY, Run, train_run, write_csv
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app

runner = CliRunner()
# cells rewritten in the new rows: (column, row, text or None for an empty cell)
EDITS = {
    "penguins": [("island", 0, "Atlantis"), ("bill_length_mm", 1, None), ("sex", 2, "  "),
                 ("island", 3, None)],
    "passengers": [("alone", 0, "YES"), ("alone", 1, "f"), ("alone", 2, "False"),
                   ("pclass", 3, "2.0"), ("pclass", 4, "4"), ("alone", 5, "TRUE")],
    "dated": [("day", 0, "1999-12-31"), ("day", 1, None), ("day", 2, "2031-02-28")],
    "unicode": [("farbe", 0, "gelb")],
    "cars": [("origin", 0, "mars"), ("year", 1, None), ("horsepower", 2, None),
             ("origin", 3, None), ("year", 4, "1990-07-14")],
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("messy_export")


def _new_csv(run: Run, path: Path) -> Path:
    frame = run.kind.frame(24, 11).drop(run.kind.target).cast(pl.String)
    rows = frame.to_dicts()
    for column, i, text in EDITS[run.kind.name]:
        rows[i][column] = text
    return write_csv(pl.DataFrame(rows, schema=frame.schema), path, bom=run.kind.bom)


def predict_and_export(run: Run, tmp_path: Path) -> tuple[np.ndarray, dict, list[np.ndarray]]:
    """New raw rows through `fcnet predict --proba` and through the exported ONNX graph in
    onnxruntime: (predicted probabilities, the sidecar, the graph's outputs)."""
    import onnxruntime as ort

    csv = _new_csv(run, tmp_path / "new.csv")
    result = runner.invoke(app, ["predict", str(run.run_dir), str(csv), "--proba"])
    assert result.exit_code == 0, result.output
    predicted = pl.read_csv(io.StringIO(result.stdout)).drop("prediction").to_numpy()
    out = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(run.run_dir), "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(out.with_name("model.onnx.json").read_text("utf-8"))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return predicted, sidecar, session.run(None, raw_feeds(csv, sidecar))


def raw_feeds(csv: Path, sidecar: dict) -> dict[str, np.ndarray]:
    """The graph's (N, 1) inputs from a CSV read as text, by the sidecar alone: strings
    ("" for an empty cell), float32 numbers (NaN), dates as float32 days since 1970-01-01."""
    raw = pl.read_csv(csv, infer_schema=False)
    feeds = {}
    for d in sidecar["inputs"]:
        s = raw[d["name"]]
        if d["dtype"] == "string":
            v = s.fill_null("").to_numpy().astype(object)
        elif d["kind"] == "date":
            v = s.str.to_date("%Y-%m-%d").cast(pl.Int32).cast(pl.Float32).fill_null(np.nan)
        else:
            v = s.cast(pl.Float32).fill_null(np.nan)
        feeds[d["name"]] = np.asarray(v).reshape(-1, 1)
    return feeds


def _both(root: Path, run: Run, *options: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(`fcnet predict` on the new rows, the exported graph on their raw cells, sidecar)."""
    import onnxruntime as ort

    csv = _new_csv(run, root / run.kind.name / "new.csv")
    result = runner.invoke(app, ["predict", str(run.run_dir), str(csv), *options])
    assert result.exit_code == 0, result.output
    expected = pl.read_csv(io.StringIO(result.stdout)).drop("prediction", strict=False)
    out = root / run.kind.name / "model.onnx"
    result = runner.invoke(app, ["export", str(run.run_dir), "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(out.with_name("model.onnx.json").read_text("utf-8"))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, raw_feeds(csv, sidecar))[0]
    return expected.to_numpy().astype(np.float32), got, sidecar


@pytest.mark.parametrize("name", list(MESSY))
def test_onnx_on_raw_rows_matches_predict(root: Path, name: str) -> None:
    run = train_run(root / name, MESSY[name])
    expected, proba, sidecar = _both(root, run, "--proba")
    assert proba.shape == expected.shape == (24, len(sidecar["classes"]))
    assert float(np.abs(proba - expected).max()) <= 1e-5
    assert (proba.argmax(1) == expected.argmax(1)).all()


def test_regression_onnx_on_raw_rows_matches_predict(root: Path) -> None:
    """Cars: a text origin (one unseen, one empty), a date year (one empty, one later than
    training) and horsepower with an empty cell; predictions in miles per gallon."""
    run = train_run(root / "cars", CARS)
    expected, pred, sidecar = _both(root, run)
    assert sidecar["task"] == "regression" and [d["kind"] for d in sidecar["inputs"]] == [
        "categorical", "date", "numeric"]
    assert pred.shape == expected.shape == (24, 1) and 15 < float(pred.mean()) < 45
    std = float(load_model(run.run_dir).target.std[0])
    assert float(np.abs(pred - expected).max()) <= 1e-4 * std

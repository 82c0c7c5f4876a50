"""Regression models served: export graphs, `eval --data` and `load_model` all return the
target in its own units (un-standardized), checked against `fcnet predict` / `eval --split`."""

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.datasets import load_diabetes
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.errors import UsageError
from fcnet_cli.serve.predict import raw_split

runner = CliRunner()
TARGETS = ["progression", "bmi_x100"]  # two targets on very different scales


@dataclass
class Regressor:
    run_dir: Path
    features: list[str]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Regressor:
    from fcnet_cli import load_experiment, train

    root = tmp_path_factory.mktemp("reg")
    bunch = load_diabetes()
    names = [str(n) for n in bunch.feature_names]
    x = np.asarray(bunch.data, np.float64)
    frame = pl.DataFrame({**{n: x[:, j] for j, n in enumerate(names)},
                          "progression": np.asarray(bunch.target, np.float64),
                          "bmi_x100": x[:, names.index("bmi")] * 100 + 50})
    csv = root / "diabetes.csv"
    frame.write_csv(csv)
    (root / "reg.yaml").write_text(
        "task: regression\n"
        f"data: {{dataset: csv, path: {csv.as_posix()}, target: [{', '.join(TARGETS)}]}}\n"
        "model: {hidden: [16]}\n"
        "training: {epochs: 3, batch_size: 32, device: cpu}\n"
        f"output: {{dir: {(root / 'runs').as_posix()}}}\n", encoding="utf-8")
    result = train(load_experiment(root / "reg.yaml"))
    assert result.run_dir is not None
    return Regressor(Path(result.run_dir), names)


@pytest.fixture(scope="module")
def reference(trained: Regressor) -> tuple[np.ndarray, np.ndarray]:
    """Raw test-split features (N, F) and `fcnet predict --split test` (N, T)."""
    result = runner.invoke(app, ["predict", str(trained.run_dir), "--split", "test"])
    assert result.exit_code == 0, result.output
    out = pl.read_csv(io.StringIO(result.stdout))
    assert out.columns == TARGETS
    x = raw_split(load_model(trained.run_dir), "test")
    assert len(x) == out.height > 50
    return x, out.to_numpy().astype(np.float32)


def _export(trained: Regressor, fmt: str, out: Path) -> dict:
    result = runner.invoke(app, ["export", str(trained.run_dir), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_name(out.name + ".json").read_text())


def _same(pred: np.ndarray, expected: np.ndarray, trained: Regressor) -> None:
    """Tolerance: 1e-4 of each target's scale (its training-split std), per column."""
    assert pred.shape == expected.shape
    std = np.asarray(load_model(trained.run_dir).target.std, np.float32)
    assert float((np.abs(pred - expected) / std).max()) <= 1e-4


def test_onnx_regression_matches_predict(trained: Regressor, tmp_path: Path,
                                         reference: tuple[np.ndarray, np.ndarray]) -> None:
    import onnxruntime as ort

    x, expected = reference
    out = tmp_path / "reg.onnx"
    sidecar = _export(trained, "onnx", out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["predictions"]
    feeds = {name: x[:, j:j + 1] for j, name in enumerate(trained.features)}  # raw columns
    assert [i.name for i in session.get_inputs()] == list(feeds)
    (pred,) = session.run(None, feeds)
    _same(pred, expected, trained)
    (one,) = session.run(None, {k: v[3:4] for k, v in feeds.items()})  # a dynamic batch axis
    np.testing.assert_allclose(one, pred[3:4], rtol=1e-6)
    assert sidecar["task"] == "regression" and sidecar["targets"] == TARGETS
    assert [o["name"] for o in sidecar["outputs"]] == ["predictions"]
    assert sidecar["outputs"][0]["columns"] == TARGETS and "classes" not in sidecar
    assert sidecar["feature_names"] == trained.features
    # the target's own units: progression is tens to hundreds, not standard units
    assert float(np.abs(pred[:, 0]).mean()) > 20


def test_pt2_regression_matches_predict(trained: Regressor, tmp_path: Path,
                                        reference: tuple[np.ndarray, np.ndarray]) -> None:
    x, expected = reference
    out = tmp_path / "reg.pt2"
    sidecar = _export(trained, "pt2", out)
    module = torch.export.load(str(out)).module()
    with torch.no_grad():
        pred = module(torch.from_numpy(x)).numpy()
        one = module(torch.from_numpy(x[:1])).numpy()
    _same(pred, expected, trained)
    np.testing.assert_allclose(one, pred[:1], rtol=1e-6)
    assert sidecar["runtime"] == "pt2" and sidecar["targets"] == TARGETS


def _test_rows(trained: Regressor, path: Path) -> pl.DataFrame:
    """The checkpoint's own test split as a raw CSV: features + targets in their units,
    columns shuffled (matched by name) and an extra id column (ignored)."""
    from fcnet_cli.engine.data.load import load_data

    m = load_model(trained.run_dir)
    x = raw_split(m, "test")
    _, y = load_data(m.experiment.data, task="regression",
                     preprocessing=m.spec.prep).split("test")
    values = m.target.unstandardize(y.numpy().astype(np.float64))
    cols = {"id": np.arange(len(x)), **{t: values[:, j] for j, t in enumerate(TARGETS)},
            **{n: x[:, j].astype(np.float64) for j, n in enumerate(trained.features)}}
    frame = pl.DataFrame(cols).select(["id", TARGETS[1], *trained.features[::-1], TARGETS[0]])
    frame.write_csv(path)
    return frame


def test_eval_data_matches_eval_split(trained: Regressor, tmp_path: Path) -> None:
    csv = tmp_path / "test_rows.csv"
    _test_rows(trained, csv)
    on_split = runner.invoke(app, ["eval", str(trained.run_dir), "--split", "test", "--json"])
    on_file = runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(csv), "--json"])
    assert on_split.exit_code == 0 and on_file.exit_code == 0, on_file.output
    a, b = json.loads(on_split.stdout), json.loads(on_file.stdout)
    assert b["task"] == "regression" and b["n"] == a["n"] > 50
    assert b["targets"] == TARGETS
    assert set(b["metrics"]) == set(a["metrics"]) >= {"rmse", "mae", "r2", "rmse_progression",
                                                      "residual_q50"}
    for key, value in a["metrics"].items():
        assert b["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert a["metrics"]["rmse_progression"] > 20  # target units, not standard units
    shown = runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(csv)])
    assert shown.exit_code == 0 and "residuals (truth − prediction)" in shown.output


def test_eval_data_missing_target_column(trained: Regressor, tmp_path: Path) -> None:
    frame = _test_rows(trained, tmp_path / "all.csv")
    csv = tmp_path / "no_target.csv"
    frame.drop(TARGETS[1]).write_csv(csv)
    result = runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(csv)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"no target column '{TARGETS[1]}'" in lines[0]
    bad = tmp_path / "nan_target.csv"
    frame.with_columns(pl.when(pl.col("id") == 4).then(None).otherwise(pl.col(TARGETS[0]))
                       .alias(TARGETS[0])).write_csv(bad)
    result = runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(bad)])
    assert result.exit_code == 2
    assert f"row 5, column '{TARGETS[0]}': missing or non-finite" in result.stderr
    one = runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(csv),
                              "--target", "progression"])
    assert one.exit_code == 2 and "predicts 2 targets" in one.stderr


def test_load_model_regression(trained: Regressor,
                               reference: tuple[np.ndarray, np.ndarray]) -> None:
    x, expected = reference
    m = load_model(trained.run_dir)
    assert m.task == "regression"
    pred = m.predict(x)
    assert pred.shape == (len(x), 2)
    np.testing.assert_allclose(pred, expected, rtol=1e-5)
    frame = pl.DataFrame({n: x[:, j] for j, n in enumerate(trained.features)})
    np.testing.assert_array_equal(m.predict(frame), pred)
    with pytest.raises(UsageError, match="regression model has no class probabilities"):
        m.predict_proba(x)

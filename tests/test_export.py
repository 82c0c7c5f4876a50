"""`fcnet export`: ONNX and TorchScript files checked in their own runtimes against predict."""

import hashlib
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from serve_data import Trained, train_iris
from typer.testing import CliRunner

from fcnet_cli import __version__, load_model
from fcnet_cli.cli import app
from fcnet_cli.serve.predict import raw_split

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="module")
def reference(trained: Trained) -> tuple[np.ndarray, np.ndarray]:
    """Raw test-split features (N, F) and `fcnet predict --split test --proba` (N, C)."""
    result = runner.invoke(app, ["predict", str(trained.run_dir), "--split", "test", "--proba"])
    assert result.exit_code == 0, result.output
    out = pl.read_csv(io.StringIO(result.stdout))
    x = raw_split(load_model(trained.run_dir), "test")
    assert len(x) == out.height > 10
    return x, out.drop("prediction").to_numpy().astype(np.float32)


def _export(trained: Trained, fmt: str, out: Path) -> dict:
    result = runner.invoke(app, ["export", str(trained.run_dir), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_name(out.name + ".json").read_text())


def _same(proba: np.ndarray, expected: np.ndarray) -> None:
    assert proba.shape == expected.shape
    assert float(np.abs(proba - expected).max()) <= 1e-5
    assert (proba.argmax(1) == expected.argmax(1)).all()


def test_onnx_in_onnxruntime_matches_predict(trained: Trained, tmp_path: Path,
                                             reference: tuple[np.ndarray, np.ndarray]) -> None:
    import onnxruntime as ort

    x, expected = reference
    out = tmp_path / "iris.onnx"
    sidecar = _export(trained, "onnx", out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "logits"]
    proba, logits = session.run(None, {"features": x})
    _same(proba, expected)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), -1).numpy(), proba,
                               atol=1e-6)
    one, _ = session.run(None, {"features": x[:1]})  # the batch axis is dynamic
    np.testing.assert_allclose(one, proba[:1], atol=1e-6)
    weights = (trained.run_dir / "checkpoints" / "best" / "model.safetensors").read_bytes()
    assert sidecar["source_checkpoint"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert sidecar["feature_names"] == ["sepal_length", "sepal_width", "petal_length",
                                        "petal_width"]
    assert sidecar["classes"] == ["setosa", "versicolor", "virginica"]
    assert sidecar["fcnet_version"] == __version__
    assert sidecar["outputs"] == ["probabilities", "logits"]


def test_torchscript_in_torch_jit_matches_predict(trained: Trained, tmp_path: Path,
                                                  reference: tuple[np.ndarray, np.ndarray]
                                                  ) -> None:
    x, expected = reference
    out = tmp_path / "iris.pt"
    sidecar = _export(trained, "torchscript", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated but still the loader
        module = torch.jit.load(str(out))
    with torch.no_grad():
        proba = module(torch.from_numpy(x)).numpy()
    _same(proba, expected)
    assert sidecar["runtime"] == "torchscript" and sidecar["outputs"] == ["probabilities"]


def test_export_refusals(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                         ) -> None:
    ckpt = str(trained.run_dir)
    out = tmp_path / "m.onnx"
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript → ImportError
    result = runner.invoke(app, ["export", ckpt, "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "error: ONNX export needs the package 'onnxscript', which is not installed: "
        "pip install 'fcnet[export]'"]
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    (tmp_path / "m.pt.json").write_text("{}")
    result = runner.invoke(app, ["export", ckpt, "--format", "torchscript",
                                 "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 2 and "m.pt.json: already exists" in result.stderr
    result = runner.invoke(app, ["export", ckpt, "--format", "torchscript",
                                 "-o", str(tmp_path / "missing" / "m.pt")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt.json"]

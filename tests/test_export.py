"""`fcnet export`: ONNX and torch.export files checked in their own runtimes against predict."""

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from serve_data import FEATURES, Trained, train_iris
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
    # a table's model takes one (N, 1) float32 input per raw column, named as the column
    assert [(i.name, i.type, i.shape[1]) for i in session.get_inputs()] == [
        (name, "tensor(float)", 1) for name in FEATURES]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "logits"]
    feeds = {name: x[:, j:j + 1] for j, name in enumerate(FEATURES)}
    proba, logits = session.run(None, feeds)
    _same(proba, expected)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), -1).numpy(), proba,
                               atol=1e-6)
    one, _ = session.run(None, {k: v[:1] for k, v in feeds.items()})  # a dynamic batch axis
    np.testing.assert_allclose(one, proba[:1], atol=1e-6)
    weights = (trained.run_dir / "checkpoints" / "best" / "model.safetensors").read_bytes()
    assert sidecar["source_checkpoint"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert sidecar["feature_names"] == FEATURES
    assert [(d["name"], d["dtype"], d["kind"]) for d in sidecar["inputs"]] == [
        (name, "float32", "numeric") for name in FEATURES]
    assert sidecar["classes"] == ["setosa", "versicolor", "virginica"]
    assert sidecar["fcnet_version"] == __version__ and sidecar["version"] == 2
    assert [o["name"] for o in sidecar["outputs"]] == ["probabilities", "logits"]
    assert sidecar["outputs"][0]["shape"] == ["batch", 3]


def _load_pt2(path: Path) -> torch.nn.Module:
    return torch.export.load(str(path)).module()


def test_pt2_in_torch_export_matches_predict(trained: Trained, tmp_path: Path,
                                             reference: tuple[np.ndarray, np.ndarray]) -> None:
    x, expected = reference
    out = tmp_path / "iris.pt2"
    sidecar = _export(trained, "pt2", out)
    module = _load_pt2(out)
    with torch.no_grad():
        proba = module(torch.from_numpy(x)).numpy()
        one = module(torch.from_numpy(x[:1])).numpy()  # the batch axis is dynamic
    _same(proba, expected)
    np.testing.assert_allclose(one, proba[:1], atol=1e-6)
    assert sidecar["runtime"] == "pt2" and [o["name"] for o in sidecar["outputs"]] == [
        "probabilities"]
    assert [(d["name"], d["shape"]) for d in sidecar["inputs"]] == [("features", ["batch", 4])]
    assert sidecar["inputs"][0]["columns"] == sidecar["encoded_names"] == FEATURES
    assert "not strings" in sidecar["preprocessing"]
    assert [c["name"] for c in sidecar["columns"]] == FEATURES


def test_torchscript_is_a_deprecated_alias_of_pt2(trained: Trained, tmp_path: Path,
                                                  reference: tuple[np.ndarray, np.ndarray]
                                                  ) -> None:
    x, expected = reference
    result = runner.invoke(app, ["export", str(trained.run_dir), "--format", "torchscript",
                                 "-o", str(tmp_path / "iris.pt")])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"note: --format torchscript is deprecated (torch.jit is); wrote a torch.export "
        f"program to {tmp_path / 'iris.pt2'}: load it with torch.export.load"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.pt2", "iris.pt2.json"]
    with torch.no_grad():
        _same(_load_pt2(tmp_path / "iris.pt2")(torch.from_numpy(x)).numpy(), expected)


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
    (tmp_path / "m.pt2.json").write_text("{}")
    result = runner.invoke(app, ["export", ckpt, "--format", "pt2", "-o", str(tmp_path / "m.pt2")])
    assert result.exit_code == 2 and "m.pt2.json: already exists" in result.stderr
    result = runner.invoke(app, ["export", ckpt, "--format", "pt2",
                                 "-o", str(tmp_path / "missing" / "m.pt2")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["export", ckpt, "--format", "pt2", "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'm.pt'}: a torch.export program's file name must end in .pt2 "
        f"(torch.export.load expects it)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2.json"]

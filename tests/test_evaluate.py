"""evaluate(): metrics vs sklearn and PyTorch; evaluate_checkpoint(): data rebuilt from meta."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import DataConfig, Experiment
from fcnet_cli.engine.data.load import load_data
from fcnet_cli.engine.evaluate import EVAL_ROWS, evaluate, evaluate_checkpoint
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.store.checkpoint import new_run_dir, save_checkpoint
from fcnet_cli.errors import DataError

CLASSES = ["a", "b", "c"]


def linear_model() -> nn.Linear:
    """Logits = x @ W.T + b with hand-set weights: 2 features, 3 classes."""
    lin = nn.Linear(2, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        lin.bias.copy_(torch.tensor([0.0, 0.1, 0.2]))
    return lin


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(23, 2) * 2
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2, 1, 1, 0, 0, 1])
    return x, y


@pytest.mark.parametrize("smoothing, batch_size", [(0.0, EVAL_ROWS), (0.1, 5)])
def test_metrics_match_sklearn_and_torch(smoothing: float, batch_size: int):
    model = linear_model()
    model.train()
    x, y = tiny_data()
    r = evaluate(model, x, y, CLASSES, "val", label_smoothing=smoothing, batch_size=batch_size)
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(1).numpy()
    truth = y.numpy()
    assert r.split == "val" and r.n == 23 and r.classes == CLASSES
    assert r.loss == pytest.approx(F.cross_entropy(logits, y, label_smoothing=smoothing).item(),
                                   rel=1e-6)
    assert r.accuracy == pytest.approx(skm.accuracy_score(truth, pred))
    assert r.confusion == skm.confusion_matrix(truth, pred, labels=[0, 1, 2]).tolist()
    p, rec, f1, support = skm.precision_recall_fscore_support(
        truth, pred, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(r.precision, p)
    np.testing.assert_allclose(r.recall, rec)
    np.testing.assert_allclose(r.f1, f1)
    assert r.support == support.tolist()


def test_undefined_precision_is_zero():
    model = linear_model()
    x = torch.tensor([[5.0, 0.0], [4.0, 0.0]])  # both predicted as class 0
    y = torch.tensor([0, 1])
    r = evaluate(model, x, y, CLASSES, "test")
    assert r.confusion == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert r.precision == [0.5, 0.0, 0.0] and r.recall == [1.0, 0.0, 0.0]
    assert r.f1[1:] == [0.0, 0.0] and r.support == [1, 1, 0]


def test_empty_split():
    r = evaluate(linear_model(), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), CLASSES,
                 "test")
    assert r.n == 0 and math.isnan(r.loss) and math.isnan(r.accuracy)
    assert r.confusion == [[0] * 3] * 3 and r.support == [0, 0, 0]
    assert r.precision == r.recall == r.f1 == [0.0, 0.0, 0.0]


def test_labels_out_of_range():
    with pytest.raises(DataError, match=r"test split has labels outside 0\.\.2"):
        evaluate(linear_model(), torch.zeros(2, 2), torch.tensor([0, 3]), CLASSES, "test")


# ---------------------------------------------------------------------------- from a checkpoint


def save_iris_checkpoint(tmp_path: Path, in_features: int = 4) -> tuple[Path, nn.Module]:
    raw = Experiment().model_dump(mode="json")
    raw["data"]["dataset"] = "iris"
    raw["model"]["hidden"] = [8]
    exp = Experiment.model_validate(raw)
    splits = load_data(exp.data)
    torch.manual_seed(1)
    model = build_mlp(exp.model, in_features, splits.n_classes)
    norm = splits.normalization.to_json()
    if in_features != splits.n_features:  # a checkpoint made for other data
        norm = {"kind": "none", "shift": [0.0] * in_features, "scale": [1.0] * in_features}
    meta = {"config": raw, "in_features": in_features, "n_classes": splits.n_classes,
            "classes": splits.classes, "normalization": norm}
    run_dir = new_run_dir(tmp_path / "runs", "iris")
    return save_checkpoint(run_dir, "best", model.state_dict(), meta), model


def test_evaluate_checkpoint_from_another_cwd(tmp_path: Path, monkeypatch):
    best, model = save_iris_checkpoint(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for split in ("test", "val"):
        r = evaluate_checkpoint(best, split)
        x, y = load_data(DataConfig(dataset="iris")).split(split)
        expected = evaluate(model, x, y, r.classes, split)
        assert r == expected and r.n == len(y) > 0
    assert evaluate_checkpoint(best.parent.parent).split == "test"  # the run directory


def test_evaluate_checkpoint_feature_mismatch(tmp_path: Path):
    best, _ = save_iris_checkpoint(tmp_path, in_features=5)
    with pytest.raises(DataError, match=r"^iris: data set has 4 features, checkpoint expects 5$"):
        evaluate_checkpoint(best)


def test_evaluate_checkpoint_csv_changed(tmp_path: Path, monkeypatch):
    csv = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    rows = ["f1,f2,f3,label"] + [f"{a:.3f},{b:.3f},{c:.3f},{i % 2}"
                                 for i, (a, b, c) in enumerate(rng.normal(size=(40, 3)))]
    csv.write_text("\n".join(rows) + "\n")
    raw = Experiment().model_dump(mode="json")
    raw["data"].update(dataset="csv", path=str(csv))
    raw["model"]["hidden"] = [8]
    exp = Experiment.model_validate(raw)
    splits = load_data(exp.data)
    model = build_mlp(exp.model, 3, 2)
    meta = {"config": raw, "in_features": 3, "n_classes": 2, "classes": splits.classes,
            "normalization": splits.normalization.to_json()}
    best = save_checkpoint(tmp_path / "run", "best", model.state_dict(), meta)
    monkeypatch.chdir(tmp_path / "run")
    assert evaluate_checkpoint(Path("checkpoints/best")).n == len(splits.y_test)
    csv.write_text("\n".join(r.split(",", 1)[1] for r in rows) + "\n")  # drop column f1
    with pytest.raises(DataError, match=r"data set has 2 features, checkpoint expects 3"):
        evaluate_checkpoint(best)
    csv.write_text("\n".join(rows[:1] + [r[:-1] + str(i % 3) for i, r in enumerate(rows[1:])]))
    with pytest.raises(DataError, match=r"data set has 3 classes, checkpoint has 2"):
        evaluate_checkpoint(best)

"""Class weights and regression losses against plain PyTorch (the oracle), K = 1 and mixed
populations, plus the epoch metrics (balanced accuracy, macro F1, RMSE/MAE/R²)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from factories import experiment
from sklearn.metrics import balanced_accuracy_score, f1_score, mean_absolute_error, r2_score
from torch import nn

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.train.loop import train, train_population
from fcnet_cli.engine.train.losses import (
    MemberLoss,
    class_weight_table,
    classification_metrics,
    regression_metrics,
)
from fcnet_cli.engine.train.population import derive_seed
from fcnet_cli.errors import ConfigError

EPOCHS = 2


LOSSES: dict[str, Any] = {
    "data": {"dataset": "wine"},
    "model": {"hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "training": {"epochs": EPOCHS, "seed": 5},
}


def torch_loss(exp: Experiment, data: DataSplits) -> nn.Module:
    """The plain nn loss module an experiment means."""
    name = exp.loss_name
    if name == "mse":
        return nn.MSELoss()
    if name == "l1":
        return nn.L1Loss()
    if name == "huber":
        return nn.HuberLoss(delta=exp.loss.huber_delta)
    w = exp.loss.class_weights
    weight = None
    if w == "balanced":
        counts = torch.bincount(data.y_train, minlength=data.n_classes).double()
        weight = (counts.sum() / (data.n_classes * counts)).float()
    elif isinstance(w, list):
        weight = torch.tensor(w, dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=exp.loss.label_smoothing)


def reference_run(exp: Experiment, data: DataSplits) -> list[dict[str, float]]:
    """nn.Sequential + torch.optim.SGD + the nn loss: what fcnet must reproduce."""
    torch.manual_seed(exp.training.seed)
    model = build_mlp(exp.model, data.n_features, data.n_outputs)
    opt = torch.optim.SGD(model.parameters(), lr=exp.optimizer.lr,
                          momentum=exp.optimizer.momentum, foreach=False)
    loss_fn = torch_loss(exp, data)
    gen = torch.Generator().manual_seed(derive_seed(exp.training.seed, 1))
    B, n = exp.training.batch_size, len(data.y_train)
    history = []
    for _ in range(exp.training.epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for b in range(-(-n // B)):
            idx = perm[b * B:(b + 1) * B]
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            val_loss = loss_fn(model(data.x_val), data.y_val).item()
        history.append({"train_loss": total / n, "val_loss": val_loss})
    return history


CASES = {
    "weights": {"loss": {"class_weights": [1.0, 2.5, 0.5]}},
    "balanced_smoothing": {"loss": {"class_weights": "balanced", "label_smoothing": 0.1}},
    "mse": {"task": "regression", "data": {"dataset": "diabetes"}},
    "huber": {"task": "regression", "data": {"dataset": "diabetes"},
              "loss": {"name": "huber", "huber_delta": 0.5}},
    "l1": {"task": "regression", "data": {"dataset": "diabetes"}, "loss": {"name": "l1"}},
}


@pytest.mark.parametrize("case", list(CASES))
def test_k1_follows_plain_pytorch(case: str, tmp_path: Path) -> None:
    exp = experiment(LOSSES, tmp_path / "runs", "loss", **CASES[case])
    data = load_data(exp.data, task=exp.task)
    want = reference_run(exp, data)
    got = train(exp).history
    for g, w in zip(got, want, strict=True):
        assert g.train_loss == pytest.approx(w["train_loss"], rel=1e-4, abs=1e-6)
        assert g.val_loss == pytest.approx(w["val_loss"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("family", ["classification", "regression"])
def test_mixed_population_members_follow_plain_pytorch(family: str, tmp_path: Path) -> None:
    if family == "classification":
        variants = [{"loss": {"class_weights": [1.0, 2.5, 0.5]}},
                    {"loss": {"class_weights": "balanced", "label_smoothing": 0.2}},
                    {"loss": {"label_smoothing": 0.05}, "optimizer": {"lr": 0.02}}]
    else:
        base = {"task": "regression", "data": {"dataset": "diabetes"}, "loss": {"name": "huber"}}
        variants = [{**base, "loss": {"name": "huber", "huber_delta": d}} for d in (0.3, 1.0)]
        variants.append({**base, "optimizer": {"lr": 0.01}})
    exps = [experiment(LOSSES, tmp_path / "runs", "loss", **v,
                       training={"seed": i}) for i, v in enumerate(variants)]
    data = load_data(exps[0].data, task=exps[0].task)
    results = train_population(exps, data=data)
    for exp, result in zip(exps, results, strict=True):
        want = reference_run(exp, data)
        for g, w in zip(result.history, want, strict=True):
            assert g.train_loss == pytest.approx(w["train_loss"], rel=1e-4, abs=1e-6)
            assert g.val_loss == pytest.approx(w["val_loss"], rel=1e-4, abs=1e-6)


def test_member_loss_matches_torch_per_member() -> None:
    torch.manual_seed(0)
    K, B, C = 3, 7, 4
    logits, y = torch.randn(K, B, C), torch.randint(0, C, (K, B))
    smoothing, weights = torch.tensor([0.0, 0.1, 0.3]), torch.rand(K, C) + 0.1
    got = MemberLoss("cross_entropy", smoothing, weights)(logits, y)
    for k in range(K):
        ref = nn.CrossEntropyLoss(weight=weights[k], label_smoothing=float(smoothing[k]))
        assert float(got[k]) == pytest.approx(float(ref(logits[k], y[k])), rel=1e-5)
    out, target = torch.randn(K, B, 2), torch.randn(K, B, 2)
    delta = torch.tensor([0.2, 1.0, 3.0])
    huber = MemberLoss("huber", delta=delta)(out, target)
    for k in range(K):
        assert float(huber[k]) == pytest.approx(
            float(nn.HuberLoss(delta=float(delta[k]))(out[k], target[k])), rel=1e-5)


def test_class_weight_table_balanced_and_errors(tmp_path: Path) -> None:
    y = torch.tensor([0, 0, 0, 1])
    exps = [experiment(LOSSES, tmp_path / "runs", "loss", loss={"class_weights": "balanced"}),
            experiment(LOSSES, tmp_path / "runs", "loss", loss={"class_weights": "none"})]
    table = class_weight_table(exps, y, 2, torch.device("cpu"))
    assert table is not None
    assert table.tolist() == [[pytest.approx(4 / 6), pytest.approx(2.0)], [1.0, 1.0]]
    with pytest.raises(ConfigError, match=r"loss.class_weights: 3 weights for 2 classes"):
        class_weight_table([experiment(LOSSES, tmp_path / "runs", "loss",
                                       loss={"class_weights": [1.0, 1.0, 1.0]})], y, 2,
                           torch.device("cpu"))


def test_metrics_match_scikit_learn() -> None:
    torch.manual_seed(1)
    truth, pred = torch.randint(0, 4, (2, 50)), torch.randint(0, 3, (2, 50))  # class 3 unpredicted
    conf = torch.zeros(2, 4, 4, dtype=torch.long)
    for k in range(2):
        conf[k] = torch.bincount(truth[k] * 4 + pred[k], minlength=16).view(4, 4)
    m = classification_metrics(conf)
    for k in range(2):
        assert float(m["val_balanced_accuracy"][k]) == pytest.approx(
            balanced_accuracy_score(truth[k], pred[k]))
        assert float(m["val_macro_f1"][k]) == pytest.approx(
            f1_score(truth[k], pred[k], average="macro", zero_division=0))
    y, out = torch.randn(40, 2).double(), torch.randn(1, 40, 2).double()
    std = [2.0, 0.5]
    diff = out - y
    got = regression_metrics((diff ** 2).sum(1), diff.abs().sum(1),
                             ((y - y.mean(0)) ** 2).sum(0), 40, std)
    s = torch.tensor(std, dtype=torch.float64)
    assert float(got["val_r2"][0]) == pytest.approx(r2_score(y, out[0]))
    assert float(got["val_mae"][0]) == pytest.approx(mean_absolute_error(y * s, out[0] * s))
    rmse = ((((out[0] - y) * s) ** 2).mean(0).sqrt()).mean()
    assert float(got["val_rmse"][0]) == pytest.approx(float(rmse))

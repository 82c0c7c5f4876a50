"""Oracle tests: the population engine against plain PyTorch.

K = 1 must follow `nn.Sequential` + `torch.optim` + `torch.optim.lr_scheduler` + an explicit
penalty to float tolerance; member k of a mixed population must follow its standalone run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from factories import experiment
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.model import build_mlp, linear_indices
from fcnet_cli.engine.store.checkpoint import load_checkpoint
from fcnet_cli.engine.train.loop import train, train_population
from fcnet_cli.engine.train.population import derive_seed

EPOCHS = 3


ORACLE: dict[str, Any] = {
    "data": {"dataset": "wine", "val_fraction": 0.2, "test_fraction": 0.2},
    "model": {"hidden": [16, 8]},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "training": {"epochs": EPOCHS, "seed": 3},
}


def _penalty(model: nn.Sequential, exp: Experiment) -> torch.Tensor:
    r = exp.regularization
    total = torch.zeros(())
    if r.type == "none":
        return total
    l1 = {"l1": r.strength, "elastic_net": r.strength * r.l1_ratio}.get(r.type, 0.0)
    l2 = {"l2": r.strength, "elastic_net": r.strength * (1 - r.l1_ratio)}.get(r.type, 0.0)
    for i in linear_indices(exp.model.hidden, batch_norm=exp.model.batch_norm):
        layer = model[i]
        tensors = [layer.weight] + ([layer.bias] if r.include_bias else [])
        for t in tensors:
            total = total + l1 * t.abs().sum() + l2 * (t * t).sum()
    return total


def _optimizer(model: nn.Sequential, exp: Experiment) -> torch.optim.Optimizer:
    o = exp.optimizer
    lin = linear_indices(exp.model.hidden, batch_norm=exp.model.batch_norm)
    decay, rest = [], []
    for name, p in model.named_parameters():
        idx, kind = name.split(".")
        is_lin = int(idx) in lin
        (decay if is_lin and (kind == "weight" or exp.regularization.include_bias)
         else rest).append(p)
    groups = [{"params": decay, "weight_decay": o.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               dampening=o.dampening, foreach=False)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                foreach=False)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                 foreach=False)
    return torch.optim.RMSprop(groups, lr=o.lr, alpha=o.alpha, eps=o.eps, momentum=o.momentum,
                               foreach=False)


def _scheduler(opt: torch.optim.Optimizer, exp: Experiment, steps_per_epoch: int) -> Any:
    s, sch = exp.scheduler, torch.optim.lr_scheduler
    epochs = exp.training.epochs
    main: Any
    if s.name == "step":
        main = sch.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    elif s.name == "multistep":
        main = sch.MultiStepLR(opt, milestones=s.milestones, gamma=s.gamma)
    elif s.name == "exponential":
        main = sch.ExponentialLR(opt, gamma=s.gamma)
    elif s.name == "cosine":
        main = sch.CosineAnnealingLR(opt, T_max=s.t_max or epochs - s.warmup_epochs,
                                     eta_min=s.eta_min)
    elif s.name == "plateau":
        return sch.ReduceLROnPlateau(opt, mode="min" if s.monitor == "val_loss" else "max",
                                     factor=s.factor, patience=s.patience,
                                     threshold=s.threshold, cooldown=s.cooldown,
                                     min_lr=s.min_lr)
    elif s.name == "onecycle":
        return sch.OneCycleLR(opt, max_lr=s.max_lr or exp.optimizer.lr, pct_start=s.pct_start,
                              total_steps=epochs * steps_per_epoch, cycle_momentum=False)
    else:
        main = sch.LambdaLR(opt, lambda e: 1.0)
    if s.warmup_epochs:
        w = s.warmup_epochs
        warm = sch.LinearLR(opt, start_factor=1 / (w + 1), end_factor=1.0, total_iters=w)
        return sch.SequentialLR(opt, [warm, main], milestones=[w])
    return main


def reference_run(exp: Experiment, data: DataSplits) -> tuple[list[dict[str, float]],
                                                                dict[str, torch.Tensor]]:
    """The plain PyTorch loop fcnet must reproduce."""
    torch.manual_seed(exp.training.seed)
    model = build_mlp(exp.model, data.n_features, data.n_classes)
    opt = _optimizer(model, exp)
    B = exp.training.batch_size
    n = len(data.y_train)
    steps = -(-n // B)
    sched = _scheduler(opt, exp, steps)
    gen = torch.Generator().manual_seed(derive_seed(exp.training.seed, 1))
    torch.manual_seed(derive_seed(exp.training.seed, 2))  # dropout masks
    smoothing = exp.loss.label_smoothing
    history = []
    for _ in range(exp.training.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        lr = opt.param_groups[0]["lr"]
        for b in range(steps):
            idx = perm[b * B:(b + 1) * B]
            x, y = data.x_train[idx], data.y_train[idx]
            lr = opt.param_groups[0]["lr"]
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=smoothing)
            objective = loss + _penalty(model, exp)
            opt.zero_grad()
            objective.backward()
            if exp.training.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), exp.training.grad_clip)
            opt.step()
            if exp.scheduler.name == "onecycle":
                sched.step()
            loss_sum += loss.item() * len(y)
            correct += int((out.argmax(1) == y).sum())
        model.eval()
        with torch.no_grad():
            vo = model(data.x_val)
            val_loss = F.cross_entropy(vo, data.y_val, label_smoothing=smoothing).item()
            val_acc = (vo.argmax(1) == data.y_val).float().mean().item()
        if exp.scheduler.name == "plateau":
            sched.step(val_loss if exp.scheduler.monitor == "val_loss" else val_acc)
        elif exp.scheduler.name != "onecycle":
            sched.step()
        history.append({"train_loss": loss_sum / n, "train_accuracy": correct / n,
                        "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr})
    return history, model.state_dict()


def assert_follows(exp: Experiment, tmp_path: Path) -> None:
    data = load_data(exp.data)
    ref_hist, ref_state = reference_run(exp, data)
    result = train(exp)
    assert result.status == "completed"
    assert len(result.history) == len(ref_hist)
    for got, want in zip(result.history, ref_hist, strict=True):
        assert got.train_loss == pytest.approx(want["train_loss"], rel=1e-4, abs=1e-6)
        assert got.val_loss == pytest.approx(want["val_loss"], rel=1e-4, abs=1e-6)
        assert got.val_accuracy == pytest.approx(want["val_accuracy"], abs=1e-9)
        assert got.lr == pytest.approx(want["lr"], rel=1e-5)
    assert result.run_dir is not None
    last = load_checkpoint(Path(result.run_dir) / "checkpoints" / "last").state_dict
    for key, want_t in ref_state.items():
        torch.testing.assert_close(last[key], want_t, rtol=1e-4, atol=1e-5, msg=key)


OPTIMIZERS = {
    "sgd_nesterov": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                     "weight_decay": 1e-3},
    "sgd_dampening": {"name": "sgd", "lr": 0.1, "momentum": 0.5, "dampening": 0.3},
    "adam": {"name": "adam", "lr": 3e-3, "weight_decay": 1e-3, "betas": [0.8, 0.99]},
    "adamw": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.05},
    "rmsprop": {"name": "rmsprop", "lr": 1e-3, "momentum": 0.5, "weight_decay": 1e-4},
}
SCHEDULES = {
    "none": {"name": "none"},
    "step": {"name": "step", "step_size": 1, "gamma": 0.5},
    "multistep": {"name": "multistep", "milestones": [1, 2], "gamma": 0.3},
    "exponential": {"name": "exponential", "gamma": 0.7},
    "cosine_warmup": {"name": "cosine", "warmup_epochs": 1, "eta_min": 1e-4},
    "plateau": {"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.5},
    "onecycle": {"name": "onecycle", "pct_start": 0.4},
}
REGULARIZERS = {
    "none": {"type": "none"},
    "l1": {"type": "l1", "strength": 1e-3},
    "l2": {"type": "l2", "strength": 1e-3, "include_bias": True},
    "elastic_net": {"type": "elastic_net", "strength": 2e-3, "l1_ratio": 0.3},
}
# every optimizer × every regularizer, with the schedules rotated through the grid
CASES = [(o, list(SCHEDULES)[(i * 4 + j) % len(SCHEDULES)], r)
         for i, o in enumerate(OPTIMIZERS) for j, r in enumerate(REGULARIZERS)]
CASES += [("sgd_nesterov", s, "l2") for s in SCHEDULES]


@pytest.mark.parametrize("opt,sched,reg", CASES)
def test_k1_follows_plain_pytorch(opt: str, sched: str, reg: str, tmp_path: Path) -> None:
    exp = experiment(ORACLE, tmp_path / "runs", "oracle", optimizer=OPTIMIZERS[opt],
                     scheduler=SCHEDULES[sched],
                   regularization=REGULARIZERS[reg])
    assert_follows(exp, tmp_path)


@pytest.mark.parametrize("extra", [
    {"model": {"hidden": [16, 8], "dropout": 0.3}},
    {"model": {"hidden": [16], "batch_norm": True, "activation": "tanh"}},
    {"model": {"hidden": [], "activation": "gelu"}},
    {"loss": {"label_smoothing": 0.1}, "model": {"activation": "silu"}},
    {"training": {"epochs": EPOCHS, "batch_size": 16, "seed": 5, "device": "cpu",
                  "grad_clip": 0.05}, "model": {"activation": "leaky_relu"}},
    {"model": {"hidden": [12], "activation": "sigmoid", "batch_norm": True, "dropout": 0.2},
     "optimizer": OPTIMIZERS["sgd_dampening"]},
], ids=["dropout", "batchnorm", "softmax_regression", "label_smoothing", "grad_clip",
        "bn_dropout_momentum"])
def test_k1_features_follow_plain_pytorch(extra: dict[str, Any], tmp_path: Path) -> None:
    assert_follows(experiment(ORACLE, tmp_path / "runs", "oracle", **extra), tmp_path)


def test_population_members_follow_standalone_runs(tmp_path: Path) -> None:
    variants = [
        {"training": {"seed": 1}, "optimizer": {"lr": 0.05, "momentum": 0.9}},
        {"training": {"seed": 2}, "optimizer": {"lr": 0.02, "momentum": 0.0},
         "regularization": REGULARIZERS["l1"], "model": {"hidden": [16, 8], "dropout": 0.2}},
        {"training": {"seed": 3}, "optimizer": {"lr": 0.1, "momentum": 0.5, "nesterov": True},
         "scheduler": SCHEDULES["step"], "loss": {"label_smoothing": 0.05}},
        {"training": {"seed": 1}, "optimizer": {"lr": 0.05, "weight_decay": 1e-2},
         "scheduler": SCHEDULES["plateau"], "regularization": REGULARIZERS["elastic_net"]},
    ]
    base_training = {"epochs": 4, "batch_size": 16, "device": "cpu"}
    exps = []
    for i, v in enumerate(variants):
        v = {**v, "training": {**base_training, **v["training"]},
             "output": {"dir": str(tmp_path / "pop"), "name": f"m{i}"}}
        exps.append(experiment(ORACLE, tmp_path / "runs", "oracle", **v))
    together = train_population(exps)
    for exp, got in zip(exps, together, strict=True):
        alone = train(exp.model_copy(update={"output": exp.output.model_copy(
            update={"dir": str(tmp_path / "alone")})}))
        assert got.status == alone.status == "completed"
        for a, b in zip(got.history, alone.history, strict=True):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5, abs=1e-7)
            assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5, abs=1e-7)
            assert a.lr == pytest.approx(b.lr, rel=1e-6)
        assert got.best_epoch == alone.best_epoch
        assert got.test is not None and alone.test is not None
        assert got.test.accuracy == pytest.approx(alone.test.accuracy)


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    exp = experiment(ORACLE, tmp_path / "runs", "oracle", model={"hidden": [16], "dropout": 0.1})
    a, b = train(exp), train(exp)
    assert [m.row() | {"seconds": 0} for m in a.history] == \
        [m.row() | {"seconds": 0} for m in b.history]
    assert a.run_dir != b.run_dir  # a new run never overwrites an old one

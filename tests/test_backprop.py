"""The hand-written backward pass against autograd, and the choice between the two engines.

Tolerance: float32, every gradient element within atol 1e-6 + rtol 1e-5 of autograd's (the
two differ only in the order of a few sums; the values are O(0.1)), with ATen's products and
with oneDNN's (forced onto these small layers by lowering ONEDNN_MIN).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fcnet_cli.config import ConfigError, Experiment, layout_key, load_experiment
from fcnet_cli.engine.train import steps as backprop
from fcnet_cli.engine.train.kernels import ACTIVATIONS as ACTIVATION_GRADS
from fcnet_cli.engine.train.loop import train
from fcnet_cli.engine.train.state import PopulationState
from fcnet_cli.engine.train.steps import (
    AutogradStep,
    ExplicitStep,
    fast_path_reason,
    onednn_linear,
)

N, F, C, B = 40, 6, 4, 9
FEATURES = {
    "plain": {},
    "dropout": {"model": {"dropout": 0.4}},
    "penalties": {"regularization": {"type": "elastic_net", "strength": 0.05, "l1_ratio": 0.4,
                                     "include_bias": True}},
    "dropout_penalty_smoothing": {"model": {"dropout": 0.25},
                                  "regularization": {"type": "l1", "strength": 0.02},
                                  "loss": {"label_smoothing": 0.1}},
}


def exp_for(activation: str, seed: int, extra: dict[str, Any]) -> Experiment:
    raw: dict[str, Any] = {"model": {"hidden": [7, 5], "activation": activation},
                           "training": {"seed": seed, "device": "cpu", "batch_size": B}}
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    if "dropout" in extra.get("model", {}) and seed == 2:  # members differ: one without
        raw["model"]["dropout"] = 0.0
    return Experiment.model_validate(raw)


def _state(exps: list[Experiment], *, autograd: bool = False) -> PopulationState:
    return PopulationState(exps, F, C, torch.device("cpu"), autograd=autograd)


def one_step(step_cls: type, exps: list[Experiment], x: torch.Tensor, y: torch.Tensor,
             idx: torch.Tensor) -> tuple[Any, tuple[torch.Tensor, ...]]:
    step = step_cls(_state(exps, autograd=step_cls is AutogradStep), x, y)
    gens = [torch.Generator().manual_seed(100 + k) for k in range(len(exps))]
    out = step(idx, gens)
    return step, tuple(t.clone() for t in out)


@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("activation", list(ACTIVATION_GRADS))
@pytest.mark.parametrize("K", [1, 3])
def test_explicit_gradients_equal_autograd(K: int, activation: str, feature: str,
                                           products: str) -> None:
    g = torch.Generator().manual_seed(K)
    x = torch.randn(N, F, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    idx = torch.stack([torch.randperm(N, generator=g)[:B] for _ in range(K)])  # (K, B)
    exps = [exp_for(activation, k + 1, FEATURES[feature]) for k in range(K)]
    fast, out_fast = one_step(ExplicitStep, exps, x, y, idx)
    ref, out_ref = one_step(AutogradStep, exps, x, y, idx)
    assert fast.products == [products] * 3
    for got, want, what in zip(out_fast, out_ref, ("logits", "loss", "objective", "targets"),
                               strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=what)
    assert bool(fast.pop.grad.abs().sum() > 0)
    for key, got, want in zip(fast.pop.param_keys, fast.pop.grads, ref.pop.grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.skipif(onednn_linear() is None, reason="this torch has no oneDNN")
def test_large_layers_take_onednn_products_and_small_ones_aten(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exps = [exp_for("relu", 1, {})]  # layers of 6·7, 7·5 and 5·4 weights
    monkeypatch.setattr(backprop, "ONEDNN_MIN", 35)
    step = ExplicitStep(_state(exps), torch.randn(N, F), torch.randint(0, C, (N,)))
    assert step.products == ["onednn", "onednn", "aten"]


def test_onednn_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCNET_ONEDNN", "0")
    onednn_linear.cache_clear()
    try:
        assert onednn_linear() is None
        exps = [exp_for("relu", 1, {})]
        monkeypatch.setattr(backprop, "ONEDNN_MIN", 0)
        step = ExplicitStep(_state(exps), torch.randn(N, F), torch.randint(0, C, (N,)))
        assert step.products == ["aten"] * 3
    finally:
        onednn_linear.cache_clear()


def test_explicit_step_reuses_its_buffers(products: str) -> None:
    exps = [exp_for("relu", 1, FEATURES["dropout"])]
    x, y = torch.randn(N, F), torch.randint(0, C, (N,))
    step = ExplicitStep(_state(exps), x, y)
    pop = step.pop
    gens = [torch.Generator().manual_seed(0)]
    first = step(torch.arange(B).view(1, B), gens)[0]
    grad = pop.grad.data_ptr()
    second = step(torch.arange(B, 2 * B).view(1, B), gens)[0]
    assert first.data_ptr() == second.data_ptr() and pop.grad.data_ptr() == grad
    assert step.products == [products] * 3


def test_one_function_chooses_the_engine() -> None:
    assert fast_path_reason([Experiment()]) is None
    # one engine per population: members that ask for different ones never share one
    assert layout_key(Experiment()) != layout_key(Experiment.model_validate(
        {"training": {"engine": "autograd"}}))
    assert fast_path_reason([Experiment.model_validate(
        {"training": {"engine": "autograd"}})]) == "training.engine is autograd"
    reason = fast_path_reason([Experiment.model_validate({"model": {"batch_norm": True}})])
    assert reason is not None and "batch norm" in reason
    # losses the explicit backward does not write out fall back to autograd, with the reason
    weighted = Experiment.model_validate({"loss": {"class_weights": "balanced"}})
    assert fast_path_reason([Experiment(), weighted]) == "class weights are trained with autograd"
    regression = Experiment.model_validate(
        {"task": "regression", "data": {"dataset": "diabetes"}, "loss": {"name": "huber"}})
    assert fast_path_reason([regression]) == "the huber loss is trained with autograd"


def wine(tmp_path: Path, name: str, **over: Any) -> Experiment:
    raw: dict[str, Any] = {
        "data": {"dataset": "wine"}, "model": {"hidden": [16, 8], "dropout": 0.2},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "regularization": {"type": "l2", "strength": 1e-3},
        "training": {"epochs": 3, "batch_size": 16, "seed": 4, "device": "cpu"},
        "output": {"dir": str(tmp_path), "name": name}}
    for k, v in over.items():
        raw[k] = {**raw[k], **v}
    return Experiment.model_validate(raw)


def test_both_engines_train_alike_and_summary_names_the_engine(tmp_path: Path) -> None:
    fast = train(wine(tmp_path, "fast"))
    slow = train(wine(tmp_path, "slow", training={"engine": "autograd"}))
    for a, b in zip(fast.history, slow.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5)
    assert fast.run_dir is not None and slow.run_dir is not None
    s_fast = json.loads((Path(fast.run_dir) / "summary.json").read_text())
    s_slow = json.loads((Path(slow.run_dir) / "summary.json").read_text())
    assert (s_fast["engine"], s_fast["engine_reason"]) == ("explicit", None)
    assert (s_slow["engine"], s_slow["engine_reason"]) == ("autograd",
                                                          "training.engine is autograd")
    # wine's layers (13·16, 16·8, 8·3 weights) are below ONEDNN_MIN: ATen's products
    assert s_fast["products"] == s_slow["products"] == ["aten"] * 3


def test_batch_norm_runs_on_autograd_and_says_so(tmp_path: Path) -> None:
    r = train(wine(tmp_path, "bn", model={"batch_norm": True},
                   training={"epochs": 1}))
    assert r.status == "completed"
    assert (r.engine, r.engine_reason) == ("autograd", "batch norm is trained with autograd")


def test_engine_knob_is_validated(tmp_path: Path) -> None:
    p = tmp_path / "e.yaml"
    p.write_text("training:\n  engine: fast\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(p)
    assert err.value.problems == [
        f"{p}:2: training.engine: Input should be 'auto' or 'autograd' (got 'fast')"]

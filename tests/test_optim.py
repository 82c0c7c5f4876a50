"""Schedules and stopping rules as pure functions: hand-computed values and torch's own."""

from __future__ import annotations

import math

import pytest
import torch

from fcnet_cli.config import Experiment, SchedulerConfig
from fcnet_cli.engine.train import optim
from fcnet_cli.engine.train.members import EarlyStopper, Plateau
from fcnet_cli.engine.train.optim import epoch_lr, onecycle_lr
from fcnet_cli.engine.train.state import PopulationState


def lrs(cfg: dict, base: float = 0.1, epochs: int = 8) -> list[float]:
    s = SchedulerConfig.model_validate(cfg)
    return [epoch_lr(s, base, e, epochs) for e in range(epochs)]


def test_step_multistep_exponential_by_hand() -> None:
    assert lrs({"name": "step", "step_size": 3, "gamma": 0.5}) == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert lrs({"name": "multistep", "milestones": [2, 5], "gamma": 0.1}) == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001])
    assert lrs({"name": "exponential", "gamma": 0.5}, epochs=3) == pytest.approx(
        [0.1, 0.05, 0.025])


def test_cosine_with_warmup_by_hand() -> None:
    got = lrs({"name": "cosine", "warmup_epochs": 2, "eta_min": 0.0}, epochs=6)
    # warm-up: 0.1·1/3, 0.1·2/3; then cosine over the remaining 4 epochs
    want = [0.1 / 3, 0.2 / 3] + [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert got == pytest.approx(want)


def test_onecycle_matches_torch() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=20, pct_start=0.25,
                                              cycle_momentum=False)
    want = []
    for _ in range(20):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert [onecycle_lr(s, 20, 0.3, 0.25) for s in range(20)] == pytest.approx(want)


def test_plateau_matches_torch_with_cooldown() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1,
                                                     threshold=0.01, cooldown=1, min_lr=0.1)
    mine = Plateau(lr=1.0, mode="min", factor=0.5, patience=1, threshold=0.01, cooldown=1,
                   min_lr=0.1)
    for v in [5, 4, 4, 4, 4, 3.99, 3.99, 3.99, 3.99, 3.99, 3.99, 3.99, 3.99]:
        ref.step(v)
        assert mine.step(v) == pytest.approx(opt.param_groups[0]["lr"])


def test_early_stopper() -> None:
    es = EarlyStopper(mode="max", patience=2, min_delta=0.01)
    assert es.improved(0.5)
    assert not es.improved(0.505)  # within min_delta
    assert not es.should_stop
    assert not es.improved(float("nan"))  # a non-finite value is never best
    assert es.should_stop


def test_optimizer_states_saved_in_the_old_weight_layout_load_transposed() -> None:
    """train_state.pt from before weights took nn.Linear's (out, in) layout holds (in, out)
    momentum buffers for the weights; resuming such a run must transpose them back."""
    exp = Experiment.model_validate({"model": {"hidden": [5]},
                                     "optimizer": {"name": "sgd", "momentum": 0.9}})
    cpu = torch.device("cpu")
    opt = PopulationState([exp], 3, 2, cpu, autograd=False)  # weights (5, 3) and (2, 5)
    pop = opt.pop
    pop.grad.copy_(torch.randn_like(pop.grad))
    optim.step(opt)  # the first step creates the momentum buffer
    train = opt.state_dict(0, 1, 0, mid_epoch=False)
    new = train["optimizer"]
    weights = pop.weight_positions()
    assert weights == {0, 2} and new["layout"] == "out_in"
    old = {"step": new["step"],
           "buffers": [{n: b.t().contiguous() if i in weights else b for n, b in d.items()}
                       for i, d in enumerate(new["buffers"])]}
    for state in (new, old):
        fresh = PopulationState([exp], 3, 2, cpu, autograd=False)
        fresh.restore([opt.weights(0)], [{**train, "optimizer": state}], [None])
        assert torch.equal(fresh.slots["momentum_buffer"], opt.slots["momentum_buffer"])

"""Per-member optimizer updates and learning-rate schedules (torch.optim semantics).

Every hyperparameter is a (K,) column of the member table (engine/train/state.py), viewed as
(K, 1) against the population's (K, P) parameter buffer; the learning rate is an argument.
Plain PyTorch (`torch.optim`, `torch.optim.lr_scheduler`) is the oracle for every formula
here; the tests hold each against it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fcnet_cli.config import SchedulerConfig
from fcnet_cli.engine.train.members import Member
from fcnet_cli.engine.train.state import PopulationState

__all__ = [
    "Settings",
    "epoch_lr",
    "epoch_lrs",
    "onecycle_lr",
    "onecycle_lrs",
    "step",
    "update",
]


@dataclass(frozen=True)
class Settings:
    """The member table's optimizer columns as (K, 1) views against the (K, P) buffers, and
    which terms any member uses (read once per population, again after it changes)."""

    mom: torch.Tensor
    eps: torch.Tensor
    b1: torch.Tensor
    b2: torch.Tensor
    alpha: torch.Tensor
    wd: torch.Tensor | None  # (K, P) weight decay per element, 0 where it does not apply
    any_momentum: bool
    undamp: torch.Tensor | None  # 1 − dampening where momentum is on
    nesterov: torch.Tensor | None  # (K, 1) bool

    @classmethod
    def of(cls, state: PopulationState) -> Settings:
        t = state.table
        # dampening only counts where momentum is on (torch ignores it otherwise)
        damp = torch.where(t.momentum > 0, t.dampening, 0.0).view(-1, 1)
        return cls(
            mom=t.momentum.view(-1, 1), eps=t.eps.view(-1, 1), b1=t.beta1.view(-1, 1),
            b2=t.beta2.view(-1, 1), alpha=t.alpha.view(-1, 1),
            wd=(t.weight_decay.view(-1, 1) * state.pop.decay_mask()
                if t.on("weight_decay") else None),
            any_momentum=t.on("momentum"),
            undamp=1 - damp if bool((damp > 0).any()) else None,
            nesterov=t.nesterov.view(-1, 1) > 0 if t.on("nesterov") else None)


@torch.no_grad()
def step(state: PopulationState) -> None:
    """One update of every member with its own hyperparameters and its lr (`state.lr`)."""
    state.step_count += 1
    update(state, state.lr.view(-1, 1), state.step_count)


@torch.no_grad()
def update(state: PopulationState, lr: torch.Tensor, t: int | torch.Tensor) -> None:
    """SGD (momentum, Nesterov, dampening), Adam, AdamW or RMSprop on the population's
    (K, P) buffers, lr (K, 1) and step number t given; no host read.

    Every layer of every member is updated by a few whole-buffer operations. Weight decay
    applies where `pop.decay_mask()` is 1: weight matrices (and biases when the layout's
    include_bias says so), never batch-norm parameters. The CUDA epoch
    (engine/train/graphs.py) passes an lr that is 0 for stopped members and t as a device
    tensor, so that one captured update serves every step.
    """
    s = state.derived("optimizer", Settings.of)
    p, g, slots = state.pop.flat, state.pop.grad, state.slots
    if state.optimizer == "sgd":
        _sgd(s, slots, p, g, lr)
    elif state.optimizer in ("adam", "adamw"):
        _adam(s, slots, p, g, lr, t, decoupled=state.optimizer == "adamw")
    else:
        _rmsprop(s, slots, p, g, lr)


def _sgd(s: Settings, slots: dict[str, torch.Tensor], p: torch.Tensor, g: torch.Tensor,
         lr: torch.Tensor) -> None:
    if s.wd is not None:
        g.addcmul_(s.wd, p)  # g + wd·w (the gradient buffer is rewritten every step)
    if s.any_momentum:
        buf = slots.get("momentum_buffer")
        if buf is None:
            buf = slots["momentum_buffer"] = g.clone()
        elif s.undamp is None:
            torch.addcmul(g, buf, s.mom, out=buf)  # buf ← μ·buf + g in one pass
        else:
            buf.mul_(s.mom).addcmul_(g, s.undamp)
        if s.nesterov is not None:
            g = torch.where(s.nesterov, g.addcmul_(s.mom, buf), buf)
        else:
            g = buf
    p.addcmul_(lr, g, value=-1)  # w ← w − lr·g


def _adam(s: Settings, slots: dict[str, torch.Tensor], p: torch.Tensor, g: torch.Tensor,
          lr: torch.Tensor, t: int | torch.Tensor, *, decoupled: bool) -> None:
    if s.wd is not None:
        if decoupled:
            p.mul_(1 - lr * s.wd)
        else:
            g.addcmul_(s.wd, p)
    if "exp_avg" not in slots:
        slots["exp_avg"] = torch.zeros_like(p)
        slots["exp_avg_sq"] = torch.zeros_like(p)
    m, s2 = slots["exp_avg"], slots["exp_avg_sq"]
    m.lerp_(g, 1 - s.b1)
    s2.mul_(s.b2).addcmul_(g * g, 1 - s.b2)
    # bias corrections in float64, like torch's python-float arithmetic; (K, 1)
    bc1 = (1 - s.b1.double() ** t).to(p.dtype)
    bc2_sqrt = (1 - s.b2.double() ** t).sqrt().to(p.dtype)
    denom = (s2.sqrt() / bc2_sqrt).add_(s.eps)
    p.sub_((lr / bc1) * m / denom)


def _rmsprop(s: Settings, slots: dict[str, torch.Tensor], p: torch.Tensor, g: torch.Tensor,
             lr: torch.Tensor) -> None:
    if s.wd is not None:
        g.addcmul_(s.wd, p)
    if "square_avg" not in slots:
        slots["square_avg"] = torch.zeros_like(p)
    sq = slots["square_avg"]
    sq.mul_(s.alpha).addcmul_(g * g, 1 - s.alpha)
    avg = sq.sqrt().add_(s.eps)
    if s.any_momentum:
        if "momentum_buffer" not in slots:
            slots["momentum_buffer"] = torch.zeros_like(p)
        buf = slots["momentum_buffer"]
        buf.mul_(s.mom).add_(g / avg)
        p.addcmul_(lr, buf, value=-1)
    else:
        p.sub_(lr * g / avg)


def epoch_lrs(members: Sequence[Member], epoch: int, epochs: int) -> list[float]:
    """Each member's lr for `epoch`: its fixed schedule, or its plateau's after warm-up."""
    lrs = []
    for m in members:
        s, base = m.exp.scheduler, m.exp.optimizer.lr
        lr = epoch_lr(s, base, epoch, epochs)
        if m.plateau is not None and epoch >= s.warmup_epochs:
            lr = m.plateau.lr
        lrs.append(lr)
    return lrs


def onecycle_lrs(members: Sequence[Member], step: int, total: int) -> list[float]:
    """Each member's one-cycle lr at batch `step` of `total`."""
    return [onecycle_lr(step, total, m.exp.scheduler.max_lr or m.exp.optimizer.lr,
                        m.exp.scheduler.pct_start) for m in members]


# ------------------------------------------------------------------ schedules (pure functions)


def epoch_lr(cfg: SchedulerConfig, base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of a fixed per-epoch schedule at 0-based `epoch` (warm-up included).

    Matches torch.optim.lr_scheduler (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR),
    each stepped once per epoch; warm-up is LinearLR(1/(w+1) → 1) over w epochs followed by the
    schedule started at its own epoch 0 (SequentialLR).
    """
    w = cfg.warmup_epochs
    if epoch < w:
        return base_lr * (epoch + 1) / (w + 1)
    e = epoch - w
    if cfg.name == "step":
        return base_lr * cfg.gamma ** (e // cfg.step_size)
    if cfg.name == "multistep":
        return base_lr * cfg.gamma ** bisect_right(cfg.milestones, e)
    if cfg.name == "exponential":
        return base_lr * cfg.gamma ** e
    if cfg.name == "cosine":
        t_max = cfg.t_max or max(1, epochs - w)
        return cfg.eta_min + (base_lr - cfg.eta_min) * (1 + math.cos(math.pi * e / t_max)) / 2
    return base_lr  # none, plateau (plateau scales it separately), onecycle (per batch)


def onecycle_lr(step: int, total_steps: int, max_lr: float, pct_start: float = 0.3,
                div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """torch.optim.lr_scheduler.OneCycleLR (cosine annealing, two phases) at batch `step`."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
              (float(total_steps - 1), max_lr, final)]
    start = 0.0
    for i, (end, lo, hi) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            pct = (step - start) / (end - start)
            return hi + (lo - hi) / 2 * (math.cos(math.pi * pct) + 1)
        start = end
    raise AssertionError("unreachable")

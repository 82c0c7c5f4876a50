"""Per-member optimizer math and learning-rate schedules (torch.optim semantics).

Every hyperparameter is a (K,) column of the member table, viewed as (K, 1) against the
population's (K, P) parameter buffer. Plain PyTorch (`torch.optim`,
`torch.optim.lr_scheduler`) is the oracle for every formula here; the tests hold each
against it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import torch

from fcnet_cli.config import SchedulerConfig
from fcnet_cli.engine.train.population import Population

__all__ = [
    "EarlyStopper",
    "Plateau",
    "PopulationOptimizer",
    "epoch_lr",
    "onecycle_lr",
]


class PopulationOptimizer:
    """SGD (momentum, Nesterov, dampening), Adam, AdamW or RMSprop over a population.

    Works on the population's member-major buffers `flat` and `grad` (K, P): every layer of
    every member is updated by a few whole-buffer operations (one pass per formula, not one
    per layer). Hyperparameters come from the member table `hp` ((K,) columns, read through
    (K, 1) views, so the lr the schedule writes into `hp["lr"]` is what the next step uses).
    Weight decay applies where `pop.decay_mask()` is 1: weight matrices (and biases when the
    layout's include_bias says so), never batch-norm parameters.
    """

    def __init__(self, name: str, pop: Population, hp: dict[str, torch.Tensor]):
        self.name = name
        self.pop = pop
        self.step_count = 0
        self.state: dict[str, torch.Tensor] = {}  # name -> (K, P), like pop.flat
        self._set_hparams(hp)

    def _set_hparams(self, hp: dict[str, torch.Tensor]) -> None:
        """(K, 1) views of the table's columns, computed once (and again after compaction)."""
        self.hp = hp
        col = {n: t.view(-1, 1) for n, t in hp.items()}
        self._lr, self._mom, self._eps = col["lr"], col["momentum"], col["eps"]
        self._b1, self._b2, self._alpha = col["beta1"], col["beta2"], col["alpha"]
        # (K, P): weight decay per element, 0 where it does not apply; None when nobody decays
        self._wd = (col["weight_decay"] * self.pop.decay_mask()
                    if bool((hp["weight_decay"] > 0).any()) else None)
        self._any_momentum = bool((hp["momentum"] > 0).any())
        # dampening only counts where momentum is on (torch ignores it otherwise)
        damp = torch.where(hp["momentum"] > 0, hp["dampening"], 0.0).view(-1, 1)
        self._undamp = 1 - damp if bool((damp > 0).any()) else None
        self._nesterov = col["nesterov"] > 0 if bool((hp["nesterov"] > 0).any()) else None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member with its own hyperparameters (lr from the table)."""
        self.step_count += 1
        self.update(self._lr, self.step_count)

    @torch.no_grad()
    def update(self, lr: torch.Tensor, t: int | torch.Tensor) -> None:
        """The update of `step` with lr (K, 1) and step number t given; no host read.

        The CUDA epoch (engine/train/graphs.py) passes an lr that is 0 for stopped members and t
        as a device tensor, so that one captured update serves every step.
        """
        p, g = self.pop.flat, self.pop.grad
        if self.name == "sgd":
            self._sgd(p, g, lr)
        elif self.name in ("adam", "adamw"):
            self._adam(p, g, lr, t)
        else:
            self._rmsprop(p, g, lr)

    def _sgd(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor) -> None:
        if self._wd is not None:
            g.addcmul_(self._wd, p)  # g + wd·w (the gradient buffer is rewritten every step)
        if self._any_momentum:
            buf = self.state.get("momentum_buffer")
            if buf is None:
                buf = self.state["momentum_buffer"] = g.clone()
            elif self._undamp is None:
                torch.addcmul(g, buf, self._mom, out=buf)  # buf ← μ·buf + g in one pass
            else:
                buf.mul_(self._mom).addcmul_(g, self._undamp)
            if self._nesterov is not None:
                g = torch.where(self._nesterov, g.addcmul_(self._mom, buf), buf)
            else:
                g = buf
        p.addcmul_(lr, g, value=-1)  # w ← w − lr·g

    def _adam(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor,
              t: int | torch.Tensor) -> None:
        if self._wd is not None:
            if self.name == "adamw":
                p.mul_(1 - lr * self._wd)
            else:
                g.addcmul_(self._wd, p)
        if "exp_avg" not in self.state:
            self.state["exp_avg"] = torch.zeros_like(p)
            self.state["exp_avg_sq"] = torch.zeros_like(p)
        m, s2 = self.state["exp_avg"], self.state["exp_avg_sq"]
        m.lerp_(g, 1 - self._b1)
        s2.mul_(self._b2).addcmul_(g * g, 1 - self._b2)
        # bias corrections in float64, like torch's python-float arithmetic; (K, 1)
        bc1 = (1 - self._b1.double() ** t).to(p.dtype)
        bc2_sqrt = (1 - self._b2.double() ** t).sqrt().to(p.dtype)
        denom = (s2.sqrt() / bc2_sqrt).add_(self._eps)
        p.sub_((lr / bc1) * m / denom)

    def _rmsprop(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor) -> None:
        if self._wd is not None:
            g.addcmul_(self._wd, p)
        if "square_avg" not in self.state:
            self.state["square_avg"] = torch.zeros_like(p)
        sq = self.state["square_avg"]
        sq.mul_(self._alpha).addcmul_(g * g, 1 - self._alpha)
        avg = sq.sqrt().add_(self._eps)
        if self._any_momentum:
            if "momentum_buffer" not in self.state:
                self.state["momentum_buffer"] = torch.zeros_like(p)
            buf = self.state["momentum_buffer"]
            buf.mul_(self._mom).add_(g / avg)
            p.addcmul_(lr, buf, value=-1)
        else:
            p.sub_(lr * g / avg)

    def member_state(self, k: int) -> dict[str, Any]:
        """Optimizer state of member k alone, one dict per parameter (for train_state.pt)."""
        per = {n: self.pop.views(t) for n, t in self.state.items()}
        return {"step": self.step_count, "layout": "out_in",
                "buffers": [{n: v[i][k].clone() for n, v in per.items()}
                            for i in range(len(self.pop.shapes))]}

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Restore from per-member states (all members at the same step)."""
        self.step_count = int(states[0]["step"])
        self.state = {}
        weights = self.pop.weight_positions()

        def buffer(s: dict[str, Any], i: int, n: str) -> torch.Tensor:
            b = s["buffers"][i][n]
            # states written before weights took nn.Linear's (out, in) layout hold (in, out)
            return b.t() if i in weights and s.get("layout") != "out_in" else b

        for n in states[0]["buffers"][0] if states[0]["buffers"] else ():
            flat = torch.zeros_like(self.pop.flat)
            for i, v in enumerate(self.pop.views(flat)):
                v.copy_(torch.stack([buffer(s, i, n) for s in states]))
            self.state[n] = flat

    def compact(self, keep: torch.Tensor, hp: dict[str, torch.Tensor]) -> None:
        """Keep only members `keep` (indices), after the population has been compacted."""
        self.state = {n: t[keep] for n, t in self.state.items()}
        self._set_hparams(hp)


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


@dataclass
class Plateau:
    """ReduceLROnPlateau (threshold_mode "rel") for one member, stepped once per epoch."""

    lr: float
    mode: str  # "min" or "max"
    factor: float
    patience: int
    threshold: float
    cooldown: int
    min_lr: float
    best: float = field(default=math.nan)
    num_bad_epochs: int = 0
    cooldown_counter: int = 0

    def __post_init__(self) -> None:
        if math.isnan(self.best):
            self.best = math.inf if self.mode == "min" else -math.inf

    def _better(self, a: float) -> bool:
        if self.mode == "min":
            return a < self.best * (1 - self.threshold)
        return a > self.best * (self.threshold + 1)

    def step(self, metric: float) -> float:
        """Feed one validation value; returns the lr for the next epoch."""
        if self._better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > 1e-8:
                self.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.lr


@dataclass
class EarlyStopper:
    """Stops a member after `patience` epochs without an improvement larger than min_delta."""

    mode: str  # "min" or "max"
    patience: int | None
    min_delta: float
    best: float | None = None
    bad_epochs: int = 0

    def improved(self, value: float) -> bool:
        """Record one epoch's value; True when it is a new best (non-finite never is)."""
        if not math.isfinite(value):
            self.bad_epochs += 1
            return False
        if self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                 else value > self.best + self.min_delta):
            self.best, self.bad_epochs = value, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

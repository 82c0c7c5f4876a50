"""Per-member optimizer math and learning-rate schedules (torch.optim semantics).

Every hyperparameter is a (K,) tensor, one entry per population member, viewed as (K, 1, ...)
against stacked parameters. Plain PyTorch (`torch.optim`, `torch.optim.lr_scheduler`) is the
oracle for every formula here; the tests hold each against it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch.optim.sgd import sgd as _torch_sgd

from fcnet_cli.config import SchedulerConfig

__all__ = [
    "EarlyStopper",
    "Plateau",
    "PopulationOptimizer",
    "epoch_lr",
    "onecycle_lr",
]


def _view(hp: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1, ..., 1) broadcastable against a stacked parameter."""
    return hp.view(-1, *([1] * (like.dim() - 1)))


class PopulationOptimizer:
    """SGD (momentum, Nesterov, dampening), Adam, AdamW or RMSprop over stacked parameters.

    `decay[i]` says whether weight decay applies to `params[i]` (weight matrices by default,
    never batch-norm parameters). `hp` holds (K,) tensors: momentum, dampening, nesterov (0/1),
    weight_decay, beta1, beta2, eps, alpha.
    """

    def __init__(self, name: str, params: list[torch.Tensor], decay: list[bool],
                 hp: dict[str, torch.Tensor]):
        self.name = name
        self.params = params
        self.decay = decay
        self.step_count = 0
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in params]
        self._set_hparams(hp)

    def _set_hparams(self, hp: dict[str, torch.Tensor]) -> None:
        """Precompute each parameter's broadcastable hyperparameter views (once, not per step)."""
        self.hp = hp
        any_wd = bool((hp["weight_decay"] > 0).any())
        self._any_momentum = bool((hp["momentum"] > 0).any())
        any_nesterov = bool((hp["nesterov"] > 0).any())
        # dampening only counts where momentum is on (torch ignores it otherwise)
        damp = torch.where(hp["momentum"] > 0, hp["dampening"], 0.0)
        any_damp = bool((damp > 0).any())
        self._views: list[dict[str, torch.Tensor | None]] = []
        for i, p in enumerate(self.params):
            self._views.append({
                "wd": _view(hp["weight_decay"], p) if any_wd and self.decay[i] else None,
                "mom": _view(hp["momentum"], p),
                "undamp": _view(1 - damp, p) if any_damp else None,
                "nesterov": _view(hp["nesterov"] > 0, p) if any_nesterov else None,
                "b1": _view(hp["beta1"], p), "b2": _view(hp["beta2"], p),
                "eps": _view(hp["eps"], p), "alpha": _view(hp["alpha"], p),
            })

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update of every member with its own lr (K,)."""
        self.step_count += 1
        if self.name == "sgd" and lr.numel() == 1 and lr.device.type == "cpu":
            self._fused_sgd(float(lr[0]))
            return
        lr_views = {d: lr.view(-1, *([1] * (d - 1))) for d in {p.dim() for p in self.params}}
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            v, st, lr_v = self._views[i], self.state[i], lr_views[p.dim()]
            if self.name == "sgd":
                self._sgd(p, g, v, lr_v, st)
            elif self.name in ("adam", "adamw"):
                self._adam(p, g, v, lr_v, st)
            else:
                self._rmsprop(p, g, v, lr_v, st)

    def _fused_sgd(self, lr: float) -> None:
        """One member on the CPU: torch.optim.SGD's own fused kernel (one pass over memory)."""
        hp = {k: float(t[0]) for k, t in self.hp.items()}
        for decayed in (True, False):
            idx = [i for i, p in enumerate(self.params)
                   if p.grad is not None and (self.decay[i] and hp["weight_decay"] > 0) == decayed]
            if not idx:
                continue
            bufs = [self.state[i].get("momentum_buffer") for i in idx]
            grads = [cast(torch.Tensor, self.params[i].grad) for i in idx]
            _torch_sgd([self.params[i] for i in idx], grads, bufs,
                       fused=True, weight_decay=hp["weight_decay"] if decayed else 0.0,
                       momentum=hp["momentum"], lr=lr, dampening=hp["dampening"],
                       nesterov=hp["nesterov"] > 0, maximize=False)
            if hp["momentum"] > 0:
                for i, buf in zip(idx, bufs, strict=True):
                    self.state[i]["momentum_buffer"] = cast(torch.Tensor, buf)

    def _sgd(self, p: torch.Tensor, g: torch.Tensor, v: dict[str, Any], lr: torch.Tensor,
             st: dict[str, torch.Tensor]) -> None:
        if v["wd"] is not None:
            g = torch.addcmul(g, v["wd"], p)  # g + wd·w
        if self._any_momentum:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = g.clone()
            elif v["undamp"] is None:
                torch.addcmul(g, buf, v["mom"], out=buf)  # buf ← μ·buf + g in one pass
            else:
                buf.mul_(v["mom"]).addcmul_(g, v["undamp"])
            if v["nesterov"] is not None:
                g = torch.where(v["nesterov"], torch.addcmul(g, v["mom"], buf), buf)
            else:
                g = buf
        p.addcmul_(lr, g, value=-1)  # w ← w − lr·g

    def _adam(self, p: torch.Tensor, g: torch.Tensor, v: dict[str, Any], lr: torch.Tensor,
              st: dict[str, torch.Tensor]) -> None:
        if v["wd"] is not None:
            if self.name == "adamw":
                p.mul_(1 - lr * v["wd"])
            else:
                g = torch.addcmul(g, v["wd"], p)
        if "exp_avg" not in st:
            st["exp_avg"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.zeros_like(p)
        b1, b2 = v["b1"], v["b2"]
        m, s2 = st["exp_avg"], st["exp_avg_sq"]
        m.lerp_(g, 1 - b1)
        s2.mul_(b2).addcmul_(g * g, 1 - b2)
        # bias corrections in float64, like torch's python-float arithmetic
        t = self.step_count
        bc1 = _view((1 - self.hp["beta1"].double() ** t).to(p.dtype), p)
        bc2_sqrt = _view((1 - self.hp["beta2"].double() ** t).sqrt().to(p.dtype), p)
        denom = (s2.sqrt() / bc2_sqrt).add_(v["eps"])
        p.sub_((lr / bc1) * m / denom)

    def _rmsprop(self, p: torch.Tensor, g: torch.Tensor, v: dict[str, Any], lr: torch.Tensor,
                 st: dict[str, torch.Tensor]) -> None:
        if v["wd"] is not None:
            g = torch.addcmul(g, v["wd"], p)
        if "square_avg" not in st:
            st["square_avg"] = torch.zeros_like(p)
        alpha = v["alpha"]
        sq = st["square_avg"]
        sq.mul_(alpha).addcmul_(g * g, 1 - alpha)
        avg = sq.sqrt().add_(v["eps"])
        if self._any_momentum:
            buf = st.setdefault("momentum_buffer", torch.zeros_like(p))
            buf.mul_(v["mom"]).add_(g / avg)
            p.addcmul_(lr, buf, value=-1)
        else:
            p.sub_(lr * g / avg)

    def member_state(self, k: int) -> dict[str, Any]:
        """Optimizer state of member k alone (for its train_state.pt)."""
        return {"step": self.step_count,
                "buffers": [{n: t[k].clone() for n, t in st.items()} for st in self.state]}

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Restore from per-member states (all members at the same step)."""
        self.step_count = int(states[0]["step"])
        for i in range(len(self.params)):
            names = states[0]["buffers"][i].keys()
            self.state[i] = {n: torch.stack([s["buffers"][i][n] for s in states]).to(
                self.params[i].device) for n in names}

    def compact(self, keep: torch.Tensor, params: list[torch.Tensor],
                hp: dict[str, torch.Tensor]) -> None:
        """Keep only members `keep` (indices), after the population has been compacted."""
        self.params = params
        self.state = [{n: t[keep] for n, t in st.items()} for st in self.state]
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

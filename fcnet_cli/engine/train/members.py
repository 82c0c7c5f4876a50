"""Per-member bookkeeping: generators, best state, plateau and early-stopping state.

Everything a member needs to end exactly as its standalone run would, and to be saved and
restored bit for bit (`train_state` / `load_state`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.train.population import derive_seed
from fcnet_cli.events import EpochMetrics, LayerStats, Pruner
from fcnet_cli.metrics import metric_mode  # the one registry of directions

__all__ = ["EarlyStopper", "Member", "Plateau", "new_member"]

TRAIN_STATE_FORMAT = 1


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


@dataclass
class Member:
    index: int  # position in the population as first built
    exp: Experiment
    perm_gen: torch.Generator  # data order
    drop_gen: torch.Generator  # dropout masks
    stopper: EarlyStopper  # also decides which epoch is best
    plateau: Plateau | None
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_dirty: bool = False  # best_state changed since it was last written
    status: str | None = None  # None while training
    reason: str | None = None
    run_dir: Path | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds_before: float = 0.0  # time spent before a resume
    engine: str = "autograd"  # which backward ran: "explicit" or "autograd" (summary.json)
    engine_reason: str | None = None  # why autograd (None for the explicit engine)
    products: list[str] = field(default_factory=list)  # per Linear: "onednn" or "aten"

    @property
    def monitor(self) -> str:
        return self.exp.training.early_stopping.monitor

    @property
    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def end_epoch(self, row: EpochMetrics, state: Callable[[], dict[str, torch.Tensor]],
                  pruner: Pruner | None) -> bool:
        """Record an epoch; True when the member stops after it."""
        if not row.is_finite():
            self.status, self.reason = "diverged", f"non-finite loss at epoch {row.epoch}"
            return True
        if self.stopper.improved(row.value(self.monitor)):
            self.best_epoch, self.best_state, self.best_dirty = row.epoch, state(), True
        sched = self.exp.scheduler
        if self.plateau is not None and row.epoch > sched.warmup_epochs:
            self.plateau.step(row.value(sched.monitor))
        if row.epoch >= self.exp.training.epochs:
            self.status = "completed"
        elif self.stopper.should_stop:
            self.status = "early_stopped"
            self.reason = (f"no {self.monitor} improvement for {self.stopper.patience} epochs "
                           f"(best epoch {self.best_epoch})")
        elif pruner is not None and pruner(self.index, row):
            self.status, self.reason = "pruned", f"pruned after epoch {row.epoch}"
        return self.status is not None

    # ------------------------------------------------------------------ save / restore

    def train_state(self, epoch: int, batch: int, optimizer: dict[str, Any],
                    perm: torch.Tensor | None, loss_sum: torch.Tensor, correct: torch.Tensor,
                    count: int) -> dict[str, Any]:
        """Everything beyond the weights that exact resume needs (torch.load weights_only)."""
        return {
            "format": TRAIN_STATE_FORMAT, "epoch": epoch, "batch": batch,
            "perm": None if perm is None else perm.cpu().clone(),
            "perm_gen": self.perm_gen.get_state(), "drop_gen": self.drop_gen.get_state(),
            "optimizer": optimizer,
            "plateau": None if self.plateau is None else asdict(self.plateau),
            "stopper": asdict(self.stopper),
            "history": [asdict(r) for r in self.history],
            "best_epoch": self.best_epoch,
            "loss_sum": loss_sum.detach().cpu().clone(), "correct": correct.detach().cpu().clone(),
            "count": count, "seconds": self.seconds,
        }

    def load_state(self, st: dict[str, Any], best: dict[str, torch.Tensor] | None) -> None:
        self.perm_gen.set_state(st["perm_gen"])
        self.drop_gen.set_state(st["drop_gen"])
        if st["plateau"] is not None:
            self.plateau = Plateau(**st["plateau"])
        self.stopper = EarlyStopper(**st["stopper"])
        self.history = [EpochMetrics(**{**r, "layers": [LayerStats(**s) for s in r["layers"]]})
                        for r in st["history"]]
        self.best_epoch, self.best_state = st["best_epoch"], best
        self.seconds_before = float(st["seconds"])
        self.started = time.perf_counter()


def new_member(index: int, exp: Experiment, device: torch.device) -> Member:
    seed = exp.training.seed
    es, s = exp.training.early_stopping, exp.scheduler
    plateau = None
    if s.name == "plateau":
        plateau = Plateau(lr=exp.optimizer.lr, mode=metric_mode(s.monitor),
                          factor=s.factor, patience=s.patience, threshold=s.threshold,
                          cooldown=s.cooldown, min_lr=s.min_lr)
    return Member(
        index=index, exp=exp,
        perm_gen=torch.Generator().manual_seed(derive_seed(seed, 1)),
        drop_gen=torch.Generator(device=device).manual_seed(derive_seed(seed, 2)),
        stopper=EarlyStopper(mode=metric_mode(es.monitor),
                             patience=es.patience, min_delta=es.min_delta),
        plateau=plateau,
    )

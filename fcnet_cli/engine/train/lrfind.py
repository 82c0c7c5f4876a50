"""The learning-rate range test, two ways (`fcnet lr-find`).

1. The ramp (Smith, "Cyclical learning rates", 2017): one pass over the training split (at
   least `MIN_RAMP_STEPS` batch steps; shorter epochs repeat) with the lr growing exponentially
   from `lr_min` to `lr_max`; the loss per step is smoothed (bias-corrected EMA) and the
   suggestion is the lr where the smoothed loss falls fastest against log lr, before its
   minimum. One member trained by `train_population` (the experiment's loss, optimizer and
   class weights), its lr set before each update by a per-batch hook; its run directory is
   `ramp/` in the output folder.
2. The population: `num` log-spaced learning rates (× `training.seeds` seeds) trained as one
   population for a short budget of `epochs` epochs, constant lr; the suggestion is the lr
   whose final validation loss is lowest. Its run directories stay in the output folder.

    result = lr_find(load_experiment("experiments/digits.yaml"), 1e-4, 10.0)
    result.suggestion  # the population's, else the ramp's
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fcnet_cli.config import Experiment, LrFindMode
from fcnet_cli.engine.data.embedded import embed_splits
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.train.loop import train_population
from fcnet_cli.errors import UsageError
from fcnet_cli.events import Callback, StopToken

__all__ = ["LrFindResult", "PopulationScan", "Ramp", "check_bounds", "lr_find", "lr_ramp",
           "lr_scan", "log_space"]

MIN_RAMP_STEPS = 100
SMOOTHING = 0.9  # EMA factor of the ramp's loss (about 10 steps of memory)
DIVERGED = 4.0  # the ramp stops once the smoothed loss exceeds this multiple of its minimum


@dataclass
class Ramp:
    lrs: list[float]  # one per step
    losses: list[float]  # the batch loss at that lr
    smoothed: list[float]
    suggestion: float | None


@dataclass
class PopulationScan:
    lrs: list[float]  # one per configuration
    train_loss: list[float]  # last-epoch training loss, mean over seeds (NaN: diverged)
    val_loss: list[float]
    epochs: int
    seeds: int
    suggestion: float | None
    run_dirs: list[str] = field(default_factory=list)


@dataclass
class LrFindResult:
    out_dir: str
    ramp: Ramp | None
    scan: PopulationScan | None

    @property
    def suggestion(self) -> float | None:
        """The population's suggestion (a measured outcome), else the ramp's."""
        if self.scan is not None and self.scan.suggestion is not None:
            return self.scan.suggestion
        return None if self.ramp is None else self.ramp.suggestion


def check_bounds(lr_min: float, lr_max: float, num: int, epochs: int) -> None:
    """UsageError (exit 2) for bounds that cannot make a range."""
    if not (lr_min > 0 and lr_max > 0) or not all(map(math.isfinite, (lr_min, lr_max))):
        raise UsageError(f"learning-rate bounds must be finite and > 0 (got --min {lr_min:g}, "
                         f"--max {lr_max:g})")
    if lr_min >= lr_max:
        raise UsageError(f"--min ({lr_min:g}) must be below --max ({lr_max:g})")
    if num < 2:
        raise UsageError(f"--num must be at least 2 (got {num})")
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1 (got {epochs})")


def log_space(lr_min: float, lr_max: float, num: int) -> list[float]:
    return [float(v) for v in np.geomspace(lr_min, lr_max, num)]


def suggest_steepest(lrs: Sequence[float], smoothed: Sequence[float]) -> float | None:
    """The lr of the steepest fall of the smoothed loss against log lr, before its minimum."""
    y = np.asarray(smoothed, dtype=np.float64)
    skip = max(1, len(y) // 10)  # the first steps still carry the EMA's start
    end = int(np.nanargmin(y)) + 1
    if end - skip < 3:
        return None
    slope = np.gradient(y[skip:end], np.log(np.asarray(lrs[skip:end])))
    return float(lrs[skip + int(np.argmin(slope))])


class _RampHook:
    """The ramp's per-batch lr (`train_population(batch_lr=...)`) and its record of the loss."""

    def __init__(self, lr_min: float, lr_max: float, steps: int, stop: StopToken,
                 outer: StopToken | None) -> None:
        self.lr_min, self.lr_max, self.steps = lr_min, lr_max, steps
        self.stop, self.outer = stop, outer  # the ramp's own token; the caller's (signals)
        self.ramp = Ramp([], [], [], None)
        self.avg, self.best = 0.0, math.inf

    def lr(self, t: int) -> float:
        return self.lr_min * (self.lr_max / self.lr_min) ** (min(t, self.steps - 1)
                                                             / (self.steps - 1))

    def __call__(self, t: int, loss: torch.Tensor) -> list[float]:
        """Record step t's loss (before its update); the lr of that update."""
        lr, value = self.lr(t), float(loss[0])  # the loop has checked it is finite
        self.avg = SMOOTHING * self.avg + (1 - SMOOTHING) * value
        s = self.avg / (1 - SMOOTHING ** (t + 1))  # bias-corrected
        self.ramp.lrs.append(lr)
        self.ramp.losses.append(value)
        self.ramp.smoothed.append(s)
        self.best = min(self.best, s)
        if self.outer is not None and self.outer.requested:
            self.stop.request(self.outer.reason or "a stop request")
        elif s > DIVERGED * self.best:
            self.stop.request(f"the lr range test (loss above {DIVERGED:g}x its minimum)")
        elif t + 1 >= self.steps:
            self.stop.request("the lr range test (its last step)")
        return [lr]


def lr_ramp(exp: Experiment, lr_min: float, lr_max: float, data: DataSplits, run_dir: Path,
            stop: StopToken | None = None) -> Ramp:
    """Smith's range test over one pass (at least MIN_RAMP_STEPS steps), as a population of
    one through `train_population`: the experiment's loss, optimizer and class weights, the lr
    set by a per-batch hook. Its run directory is `run_dir`."""
    per_pass = math.ceil(len(data.y_train) / exp.training.batch_size)
    steps = max(per_pass, MIN_RAMP_STEPS)
    t = exp.training
    member = exp.model_copy(update={
        "scheduler": exp.scheduler.model_copy(update={"name": "none"}),
        "training": t.model_copy(update={
            "epochs": math.ceil(steps / per_pass), "seeds": 1,
            "early_stopping": t.early_stopping.model_copy(update={"patience": None})})})
    hook = _RampHook(lr_min, lr_max, steps, StopToken(), stop)
    train_population([member], stop=hook.stop, run_dirs=[run_dir], eager_checkpoints=False,
                     data=data, batch_lr=hook)
    ramp = hook.ramp
    ramp.suggestion = suggest_steepest(ramp.lrs, ramp.smoothed) if ramp.lrs else None
    return ramp


def lr_scan(exp: Experiment, lrs: Sequence[float], epochs: int, out_dir: Path,
            data: DataSplits, callbacks: Sequence[Callback] = (),
            stop: StopToken | None = None) -> PopulationScan:
    """`lrs` × `training.seeds` members, constant lr, `epochs` epochs, as one population."""
    seeds = exp.training.seeds
    t = exp.training.model_copy(update={"epochs": epochs, "seeds": 1,
                                        "early_stopping": exp.training.early_stopping
                                        .model_copy(update={"patience": None})})
    members, dirs = [], []
    for i, lr in enumerate(lrs):
        for s in range(seeds):
            members.append(exp.model_copy(update={
                "optimizer": exp.optimizer.model_copy(update={"lr": lr}),
                "scheduler": exp.scheduler.model_copy(update={"name": "none"}),
                "training": t.model_copy(update={"seed": t.seed + s})}))
            dirs.append(out_dir / f"lr-{i:02d}-seed-{t.seed + s}")
    results = train_population(members, callbacks=callbacks, stop=stop, run_dirs=dirs,
                               eager_checkpoints=False, data=data)
    train_loss, val_loss = [], []
    for i in range(len(lrs)):
        runs = results[i * seeds:(i + 1) * seeds]
        done = [r.last for r in runs if r.status == "completed" and r.last is not None]
        ok = len(done) == seeds
        train_loss.append(float(np.mean([m.train_loss for m in done])) if ok else math.nan)
        val_loss.append(float(np.mean([m.val_loss for m in done])) if ok else math.nan)
    finite = [i for i, v in enumerate(val_loss) if math.isfinite(v)]
    best = min(finite, key=val_loss.__getitem__) if finite else None
    return PopulationScan(list(lrs), train_loss, val_loss, epochs, seeds,
                          None if best is None else lrs[best], [str(d) for d in dirs])


def lr_find(exp: Experiment, lr_min: float = 1e-5, lr_max: float = 10.0, num: int = 12,
            epochs: int = 3, mode: LrFindMode = "both", callbacks: Sequence[Callback] = (),
            stop: StopToken | None = None) -> LrFindResult:
    """Run the ramp and/or the population scan; results under runs/<name>/lr-find/<stamp>/."""
    check_bounds(lr_min, lr_max, num, epochs)
    data = embed_splits(load_data(exp.data, task=exp.task), exp.model, exp.data.split_seed)
    out_dir = ck.new_run_dir(Path(exp.output.dir) / exp.name, "lr-find")
    ramp = None
    if mode != "population":
        ramp = lr_ramp(exp, lr_min, lr_max, data, out_dir / "ramp", stop)
    scan = None
    if mode != "ramp":
        scan = lr_scan(exp, log_space(lr_min, lr_max, num), epochs, out_dir, data, callbacks,
                       stop)
    return LrFindResult(str(out_dir), ramp, scan)

"""The learning-rate range test, two ways (`fcnet lr-find`).

1. The ramp (Smith, "Cyclical learning rates", 2017): one pass over the training split (at
   least `MIN_RAMP_STEPS` batch steps; shorter epochs repeat) with the lr growing exponentially
   from `lr_min` to `lr_max`; the loss per step is smoothed (bias-corrected EMA) and the
   suggestion is the lr where the smoothed loss falls fastest against log lr, before its
   minimum. Plain PyTorch: `build_mlp` + `torch.optim` with the experiment's optimizer.
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
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.data.embedded import embed_splits
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.train.population import derive_seed
from fcnet_cli.engine.train.loop import pick_device, train_population
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


def _optimizer(exp: Experiment, params: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = exp.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               dampening=o.dampening, weight_decay=o.weight_decay)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, alpha=o.alpha, eps=o.eps,
                                   momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(params, lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps,
               weight_decay=o.weight_decay)


def suggest_steepest(lrs: Sequence[float], smoothed: Sequence[float]) -> float | None:
    """The lr of the steepest fall of the smoothed loss against log lr, before its minimum."""
    y = np.asarray(smoothed, dtype=np.float64)
    skip = max(1, len(y) // 10)  # the first steps still carry the EMA's start
    end = int(np.nanargmin(y)) + 1
    if end - skip < 3:
        return None
    slope = np.gradient(y[skip:end], np.log(np.asarray(lrs[skip:end])))
    return float(lrs[skip + int(np.argmin(slope))])


def lr_ramp(exp: Experiment, lr_min: float, lr_max: float, data: DataSplits,
            stop: StopToken | None = None) -> Ramp:
    """Smith's range test over one pass (at least MIN_RAMP_STEPS steps)."""
    device = pick_device(exp.training.device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    B = exp.training.batch_size
    per_pass = max(1, len(y) // B)
    steps = max(per_pass, MIN_RAMP_STEPS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(exp.training.seed, 0))
        model = build_mlp(exp.model, data.n_features, data.n_classes).to(device)
    model.train()
    opt = _optimizer(exp, list(model.parameters()))
    gen = torch.Generator().manual_seed(derive_seed(exp.training.seed, 1))
    order = torch.cat([torch.randperm(len(y), generator=gen)
                       for _ in range(math.ceil(steps * B / len(y)) + 1)]).to(device)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=exp.loss.label_smoothing)
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    for t in range(steps):
        if stop is not None and stop.requested:
            break
        lr = lr_min * (lr_max / lr_min) ** (t / (steps - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = order[t * B:(t + 1) * B]  # (batch,)
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        s = avg / (1 - SMOOTHING ** (t + 1))  # bias-corrected
        lrs.append(lr)
        losses.append(value)
        smoothed.append(s)
        best = min(best, s)
        if s > DIVERGED * best:
            break
    return Ramp(lrs, losses, smoothed, suggest_steepest(lrs, smoothed) if lrs else None)


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
    data = embed_splits(load_data(exp.data), exp.model, exp.data.split_seed)
    out_dir = ck.new_run_dir(Path(exp.output.dir) / exp.name, "lr-find")
    ramp = lr_ramp(exp, lr_min, lr_max, data, stop) if mode != "population" else None
    scan = None
    if mode != "ramp":
        scan = lr_scan(exp, log_space(lr_min, lr_max, num), epochs, out_dir, data, callbacks,
                       stop)
    return LrFindResult(str(out_dir), ramp, scan)

"""Plain dataclasses the engine emits, and the callback protocol. No torch, no rich."""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "FINAL_FAILS",
    "BatchProgress",
    "Callback",
    "EpochMetrics",
    "EvalResult",
    "GroupResult",
    "LayerStats",
    "Pruner",
    "RunResult",
    "RunStart",
    "SPARSE_BELOW",
    "StopToken",
    "SweepResult",
    "SweepUpdate",
    "TrialResult",
]


SPARSE_BELOW = 1e-3  # a weight counts as zero in LayerStats.sparsity when |w| is below this


@dataclass
class LayerStats:
    """Per-layer weight diagnostics of one member after an epoch."""

    layer: str  # e.g. "0" for the first Linear in nn.Sequential
    l2_norm: float  # sqrt(Σ w²) of the weight matrix
    l1_norm: float  # Σ |w|
    sparsity: float  # fraction of weights with |w| < SPARSE_BELOW


@dataclass
class EpochMetrics:
    """One epoch of one member. Train metrics are averaged over the epoch's batches."""

    member: int
    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float  # learning rate used in this epoch (at its last batch)
    seconds: float  # wall time of the epoch (whole population)
    layers: list[LayerStats] = field(default_factory=list)
    # further validation metrics: val_balanced_accuracy and val_macro_f1 (classification;
    # two classes also val_roc_auc and val_pr_auc of the second class),
    # or val_rmse, val_mae (target units) and val_r2 (regression; accuracies are then NaN)
    metrics: dict[str, float] = field(default_factory=dict)

    def value(self, name: str) -> float:
        """A validation metric by name (`config.Monitor`); NaN when this run lacks it."""
        if name in ("val_loss", "val_accuracy", "train_loss", "train_accuracy"):
            return float(getattr(self, name))
        return self.metrics.get(name, math.nan)

    @property
    def gap_accuracy(self) -> float:
        """Generalization gap: train accuracy − validation accuracy."""
        return self.train_accuracy - self.val_accuracy

    @property
    def gap_loss(self) -> float:
        """Generalization gap: validation loss − train loss."""
        return self.val_loss - self.train_loss

    def row(self) -> dict[str, Any]:
        """Flat row for metrics.csv."""
        out: dict[str, Any] = {
            "epoch": self.epoch, "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy, "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy, "gap_accuracy": self.gap_accuracy,
            "gap_loss": self.gap_loss, **self.metrics, "lr": self.lr, "seconds": self.seconds,
        }
        for s in self.layers:
            out[f"l2_norm_{s.layer}"] = s.l2_norm
            out[f"l1_norm_{s.layer}"] = s.l1_norm
            out[f"sparsity_{s.layer}"] = s.sparsity
        return out

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.train_loss, self.val_loss))


@dataclass
class RunStart:
    """Emitted once per population before the first epoch."""

    names: list[str]  # one per member
    run_dirs: list[str | None]
    epochs: int
    batches_per_epoch: int
    start_epoch: int  # 0 for a fresh run, >0 on resume
    device: str
    n_train: int
    n_val: int
    n_test: int
    n_features: int
    n_classes: int  # regression: the number of targets
    task: str = "classification"
    notices: list[str] = field(default_factory=list)  # data notices (e.g. unseen categories)
    monitor: str = "val_loss"  # the validation metric that picks the best epoch (member 0's)


@dataclass
class BatchProgress:
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int


@dataclass
class EvalResult:
    """Metrics of one model on one split."""

    split: str
    loss: float
    accuracy: float
    n: int
    classes: list[str]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion: list[list[int]]  # rows = true class, columns = predicted
    task: str = "classification"
    # classification: balanced_accuracy, macro_f1, majority_rate (share of the most frequent
    # class); two classes also roc_auc, pr_auc, threshold (when one was given) and, from
    # `evaluate_checkpoint`, best_threshold / best_threshold_balanced_accuracy on the
    # validation split; regression: rmse, mae, r2 (mean over targets, target units), and per target
    # rmse_<name> / mae_<name> / r2_<name> plus residual quantiles residual_q05 … residual_q95
    metrics: dict[str, float] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)  # regression target names
    notices: list[str] = field(default_factory=list)  # warnings to show with the metrics
    # an ensemble's members on the same split: metric -> {"mean", "std", "values"} (loss,
    # accuracy, balanced_accuracy, macro_f1 [, roc_auc]; regression: loss, rmse, mae, r2)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """The outcome of one member (one run directory)."""

    name: str
    run_dir: str | None
    status: str  # completed | early_stopped | diverged | interrupted | pruned | failed
    # (summary.json also says "running" while a run trains; compare: "incomplete" if killed)
    history: list[EpochMetrics]
    best_epoch: int | None  # 1-based epoch of the best validation metric
    monitor: str
    test: EvalResult | None = None
    reason: str | None = None  # for diverged / failed: what happened
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)  # e.g. the majority-class warning
    engine: str = "autograd"  # "explicit" (hand-written backward) or "autograd"
    engine_reason: str | None = None  # why autograd ran (None for the explicit engine)
    # per Linear layer, whose products trained it: "onednn" or "aten" (autograd: all "aten")
    products: list[str] = field(default_factory=list)
    precision: str = "fp32"  # training.precision as it ran: fp32, tf32 or bf16
    members: list[str] = field(default_factory=list)  # an ensemble: each member's status
    member_epochs: list[int | None] = field(default_factory=list)  # ... and its best epoch
    # ... and the epochs it trained in this call ([] for one that had finished before a resume)
    member_histories: list[list[EpochMetrics]] = field(default_factory=list)

    @property
    def best(self) -> EpochMetrics | None:
        if self.best_epoch is None:
            return None
        return next((m for m in self.history if m.epoch == self.best_epoch), None)

    @property
    def last(self) -> EpochMetrics | None:
        return self.history[-1] if self.history else None


# TrialResult.status of failed trials that are results (the configuration itself fails); any
# other failure (interrupted, a worker that died) is re-run by the next sweep worker.
FINAL_FAILS = ("diverged", "error", "invalid")


@dataclass
class GroupResult:
    """`training.seeds > 1`: the seeds of one experiment, trained as one population."""

    name: str
    group_dir: str  # holds group.json and one run directory per seed (seed-<seed>/)
    seeds: list[int]  # every seed of the group
    runs: list[RunResult]  # the members trained by this call (on resume: the unfinished ones)

    @property
    def status(self) -> str:
        """interrupted > diverged > failed > completed: the one that decides the exit code."""
        found = {r.status for r in self.runs}
        for status in ("interrupted", "diverged", "failed"):
            if status in found:
                return status
        return "completed"


@dataclass
class TrialResult:
    """One sweep trial: one configuration, trained with `seeds` seeds (one member each)."""

    number: int  # Optuna trial number
    params: dict[str, Any]  # the swept hyperparameters that apply to this configuration
    seed: int  # training.seed of the first member
    state: str  # complete | pruned | fail | running | waiting
    value: float | None  # mean over seeds of the metric at each member's best epoch
    run: RunResult | None  # the first member's run, when trained in this process
    std: float | None = None  # standard deviation of the metric over seeds (0 for one seed)
    values: list[float] = field(default_factory=list)  # one per seed
    best_epochs: list[int] = field(default_factory=list)  # one per seed
    gap: float | None = None  # mean train − val accuracy at the best epochs
    seconds: float = 0.0  # wall time of the population the trial trained in
    run_dirs: list[str] = field(default_factory=list)  # one per seed
    checkpoint: str | None = None  # `best` checkpoint of the trial's best seed
    status: str | None = None  # fcnet's finer state: diverged, error, interrupted, invalid, ...
    reason: str | None = None  # why it failed or was pruned
    # mean over seeds at the best epochs of the other validation metrics (EpochMetrics.metrics)
    also: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("run")
        return out


@dataclass
class SweepResult:
    """A sweep's trials as the study storage holds them (all workers, all sessions)."""

    name: str
    sweep_dir: str
    metric: str
    direction: str  # maximize | minimize
    trials: list[TrialResult]  # ranked: completed trials best first, then the others
    swept: list[str] = field(default_factory=list)  # parameter keys, in the spec's order
    counts: dict[str, int] = field(default_factory=dict)  # done, pruned, failed, running, ...
    total: int | None = None  # configurations the sweep will run (grid size or `trials`)
    interrupted: bool = False  # this session stopped early (Ctrl-C / SIGTERM)

    @property
    def best(self) -> TrialResult | None:
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return done[0] if done else None

    def to_dict(self, top: int = 0) -> dict[str, Any]:
        """JSON-ready; `top` > 0 keeps the first `top` trials of the ranking (best first)."""
        best = self.best
        trials = self.trials[:top] if top > 0 else self.trials
        return {"name": self.name, "sweep_dir": self.sweep_dir, "metric": self.metric,
                "direction": self.direction, "swept": self.swept, "counts": self.counts,
                "total": self.total, "interrupted": self.interrupted,
                "best": None if best is None else best.to_dict(),
                "trials": [t.to_dict() for t in trials],
                "trials_omitted": len(self.trials) - len(trials)}


@dataclass
class SweepUpdate:
    """Emitted by a sweep between populations: trial counts and the top of the leaderboard."""

    counts: dict[str, int]  # done, pruned, failed, running, waiting
    total: int | None
    top: list[TrialResult]  # best completed trials first
    metric: str
    swept: list[str]
    message: str | None = None  # e.g. "population 3: 12 trials × 3 seeds, hidden [64]"


class Callback(Protocol):
    """Receives engine events: every method below, each called by whoever trains or sweeps.

    Subclass it and override what you need; the others are no-ops. `close()` is called once
    by the command that made the callback, after the run (a live display stops its area).
    """

    def on_run_start(self, start: RunStart) -> None:
        """Called once per population before its first epoch."""
        return None

    def on_batch_end(self, progress: BatchProgress) -> None:
        """Called after every training step."""
        return None

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        """Called once per epoch with one entry per member still training."""
        return None

    def on_member_end(self, member: int, result: RunResult) -> None:
        """Called once per member when it ends (any status), after its summary.json."""
        return None

    def on_sweep_update(self, update: SweepUpdate) -> None:
        """Sweeps only: called when trials are claimed and when they end."""
        return None

    def close(self) -> None:
        """Release what the callback holds (a live display, an open file)."""
        return None


class Pruner(Protocol):
    """Asked by the engine after every epoch whether to stop a member early (a sweep)."""

    def observe(self, rows: list[EpochMetrics]) -> None:
        """Every member's row of this epoch, before the first question: a sweep decides for
        all seeds of a trial from their mean."""

    def __call__(self, member: int, row: EpochMetrics) -> bool:
        """Stop `member` (its index in the population's original list) after epoch `row`?"""


class StopToken:
    """Set by a signal handler; the engine stops at the next batch boundary when it is set."""

    def __init__(self) -> None:
        self.reason: str | None = None  # e.g. "SIGINT", "SIGTERM"
        # set by the engine once the data is loaded, before any run directory is written:
        # until then a stop has nothing to save, and the CLI may abort at once
        self.data_ready = False
        self.lock = threading.Lock()  # held by whoever acts on data_ready

    def mark_data_ready(self) -> None:
        with self.lock:
            self.data_ready = True

    def request(self, reason: str) -> None:
        self.reason = reason

    @property
    def requested(self) -> bool:
        return self.reason is not None

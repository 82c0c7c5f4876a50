"""The metric registry: every metric fcnet reports, with its direction, bounds and display name.

Every report that ranks or summarizes a metric asks here which way is better and what range
its values can take: `compare`, the sweep leaderboard, seed summaries, the early stopper and
the plateau schedule, the live table and the plots. No report decides a direction itself, so
none can sort a metric the wrong way.

    metric_mode("val_balanced_accuracy")   # "max"
    best_first(runs, "val_rmse", value=lambda r: r.rmse)   # lowest RMSE first, missing last
    clip_interval("val_accuracy", 0.38, 1.22)              # (0.38, 1.0, True)

Names are a split prefix (`val_`, `test_`, `train_`, also `best_val_`) and a base name
(`loss`, `balanced_accuracy`, ...); `gap_accuracy` and `gap_loss` are their own names.

Why a leaf module and not `engine/evaluate.py`: the config (the monitor's direction), the
analysis tables and the display read it, and none of them may import torch (`fcnet compare`,
`fcnet validate` and `--help` stay fast). `engine.evaluate` re-exports it, as the engine's
map says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = ["REGISTRY", "MetricInfo", "base_name", "best_first", "clip_interval", "direction",
           "is_better", "label", "metric_info", "metric_mode", "rank_key"]

T = TypeVar("T")
INF = math.inf


@dataclass(frozen=True)
class MetricInfo:
    """One metric: which way is better, the range of its values and its short display name."""

    name: str  # base name: "balanced_accuracy"
    display: str  # short table header: "bal acc"
    higher_is_better: bool
    low: float = -INF  # the smallest value the metric can take
    high: float = INF  # the largest
    task: Literal["classification", "regression", "any"] = "any"

    @property
    def mode(self) -> Literal["min", "max"]:
        return "max" if self.higher_is_better else "min"

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.higher_is_better else "minimize"

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) or math.isfinite(self.high)


REGISTRY: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("loss", "loss", False, 0.0),
    MetricInfo("accuracy", "acc", True, 0.0, 1.0, "classification"),
    MetricInfo("balanced_accuracy", "bal acc", True, 0.0, 1.0, "classification"),
    MetricInfo("macro_f1", "F1", True, 0.0, 1.0, "classification"),
    MetricInfo("roc_auc", "ROC-AUC", True, 0.0, 1.0, "classification"),
    MetricInfo("pr_auc", "PR-AUC", True, 0.0, 1.0, "classification"),
    MetricInfo("rmse", "rmse", False, 0.0, INF, "regression"),
    MetricInfo("mae", "mae", False, 0.0, INF, "regression"),
    MetricInfo("r2", "r2", True, -INF, 1.0, "regression"),
    # train − val accuracy and val − train loss: smaller is less overfitting
    MetricInfo("gap_accuracy", "gap acc", False, -1.0, 1.0, "classification"),
    MetricInfo("gap_loss", "gap loss", False),
)}
_PREFIXES = ("best_val_", "val_", "test_", "train_", "best_")
_SPLIT_LABELS = {"best_val_": "best val ", "val_": "val ", "test_": "test ", "train_": "train ",
                 "best_": "best "}


def _split(name: str) -> tuple[str, str]:
    """'best_val_macro_f1' -> ('best_val_', 'macro_f1'); 'gap_loss' -> ('', 'gap_loss')."""
    if name in REGISTRY:
        return "", name
    for prefix in _PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in REGISTRY:
            return prefix, name[len(prefix):]
    return "", name


def base_name(name: str) -> str:
    """The registry name of `name` without its split prefix ('test_rmse' -> 'rmse')."""
    return _split(name)[1]


def metric_info(name: str) -> MetricInfo:
    """The registry entry of a metric name, with or without its split prefix.

    Raises:
        KeyError: a name the registry does not know (no report may guess its direction).
    """
    base = _split(name)[1]
    if base not in REGISTRY:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[base]


def metric_mode(name: str) -> Literal["min", "max"]:
    """"max" when a larger value of the metric is better, "min" when a smaller one is."""
    return metric_info(name).mode


def direction(name: str) -> Literal["maximize", "minimize"]:
    """Optuna's word for `metric_mode`."""
    return metric_info(name).direction


def label(name: str) -> str:
    """A short display name: 'val_balanced_accuracy' -> 'val bal acc'."""
    prefix, base = _split(name)
    if base not in REGISTRY:
        return name.replace("_", " ")
    return _SPLIT_LABELS.get(prefix, "") + REGISTRY[base].display


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(float(value))


def is_better(name: str, a: float | None, b: float | None) -> bool:
    """Whether `a` is strictly better than `b` for this metric (a missing value never is)."""
    if _missing(a):
        return False
    if _missing(b):
        return True
    assert a is not None and b is not None
    return a > b if metric_info(name).higher_is_better else a < b


def rank_key(name: str, value: float | None) -> tuple[bool, float]:
    """A sort key that puts the best value first and missing (None, NaN) values last."""
    if _missing(value):
        return True, 0.0
    assert value is not None
    return False, -float(value) if metric_info(name).higher_is_better else float(value)


def best_first(items: Iterable[T], name: str, value: Callable[[T], float | None]) -> list[T]:
    """`items` sorted best first by `value(item)` of metric `name`; missing values last,
    ties in their original order."""
    return sorted(items, key=lambda item: rank_key(name, value(item)))


def clip_interval(name: str, low: float, high: float) -> tuple[float, float, bool]:
    """An interval cut to the metric's range, and whether it had to be cut.

    A t-interval of a mean is symmetric and knows nothing of bounds: two accuracies 0.75 and
    0.85 give [0.17, 1.43]. The mean cannot leave [0, 1], so the part outside is impossible;
    it is cut and the interval marked. Unknown names are left as they are.
    """
    base = _split(name)[1]
    info = REGISTRY.get(base)
    if info is None or math.isnan(low) or math.isnan(high):
        return low, high, False
    lo, hi = max(low, info.low), min(high, info.high)
    return lo, hi, (lo, hi) != (low, high)

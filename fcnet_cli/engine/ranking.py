"""Binary classification by score: ROC-AUC, average precision (PR-AUC) and decision thresholds.

The score of a row is the model's margin for the positive class, ``logit[1] − logit[0]``
(the positive class is ``classes[1]``, the second class in the model's order); its
probability is ``sigmoid(margin)``, the softmax of two logits. Both AUCs depend only on the
order of the scores, so the margin is used (a float32 probability saturates at 1.0 and
would tie rows the margin tells apart). Ties count as scikit-learn counts them: a tied
positive/negative pair scores one half (``roc_auc_score``), and a group of tied scores is
one threshold (``average_precision_score``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.errors import UsageError

__all__ = ["BINARY_METRICS", "average_precision", "best_threshold", "check_binary_monitors",
           "check_threshold", "margin_threshold", "roc_auc", "watched_metrics"]

BINARY_METRICS = ("val_roc_auc", "val_pr_auc")  # monitorable; need exactly two classes


def _curve(scores: torch.Tensor, positive: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows sorted by descending score: (label, tp at the end of each row's tie group,
    tp before the group, is the row its group's last, rank 1..N), each (K, N) float64."""
    k, n = scores.shape
    order = scores.argsort(dim=1, descending=True, stable=True)
    s = scores.gather(1, order)
    label = positive.to(scores.device).double().expand(k, n).gather(1, order)
    tp = label.cumsum(1)
    idx = torch.arange(n, device=scores.device).expand(k, n)
    start = torch.ones_like(s, dtype=torch.bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    end = torch.ones_like(start)
    end[:, :-1] = start[:, 1:]
    first = torch.where(start, idx, 0).cummax(1).values  # index where each row's group starts
    last = torch.where(end, idx, n).flip(1).cummin(1).values.flip(1)  # ... and ends
    tp_end = tp.gather(1, last)
    tp_before = torch.where(first > 0, tp.gather(1, (first - 1).clamp(min=0)), 0.0)
    return label, tp_end, tp_before, end, (idx + 1).double()


def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ROC-AUC per member: scores (K, N) (higher = more positive), positive (N,) bool.

    The share of (positive, negative) pairs the scores order correctly, ties counting one
    half; NaN when the rows hold only one class. Returns (K,) float64.
    """
    if scores.dim() == 1:
        return roc_auc(scores.unsqueeze(0), positive)[0]
    n_pos = float(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return torch.full((scores.shape[0],), math.nan, dtype=torch.float64)
    label, tp_end, tp_before, _, _ = _curve(scores, positive)
    # each negative: the positives above it, plus half of those tied with it
    above = 0.5 * (tp_end + tp_before)
    return ((1 - label) * above).sum(1).cpu() / (n_pos * n_neg)


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Average precision (the area under the precision-recall curve as scikit-learn's
    ``average_precision_score`` sums it): Σ over distinct thresholds of the recall gained
    times the precision there. NaN without positives. Returns (K,) float64."""
    if scores.dim() == 1:
        return average_precision(scores.unsqueeze(0), positive)[0]
    n_pos = float(positive.sum())
    if n_pos == 0:
        return torch.full((scores.shape[0],), math.nan, dtype=torch.float64)
    _, tp_end, tp_before, end, rank = _curve(scores, positive)
    gained = torch.where(end, tp_end - tp_before, 0.0) / n_pos
    return (gained * tp_end / rank).sum(1).cpu()


def best_threshold(margins: torch.Tensor, positive: torch.Tensor) -> tuple[float, float]:
    """The probability threshold T (positive when p ≥ T) that maximizes balanced accuracy
    on these rows, and that balanced accuracy. T lies halfway between the two distinct
    probabilities it separates (the highest such T when several tie). (NaN, NaN) when the
    rows hold only one class."""
    n_pos = float(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan, math.nan
    m = margins.double().flatten()
    label, tp_end, _, end, rank = _curve(m.unsqueeze(0), positive.flatten())
    fp_end = rank - tp_end  # at a group's end: every row so far is predicted positive
    balanced = torch.where(end, (tp_end / n_pos + 1 - fp_end / n_neg) / 2, -1.0)[0]
    i = int(balanced.argmax())  # the first maximum: the highest threshold
    p = torch.sigmoid(m.sort(descending=True).values)
    below = p[i + 1] if i + 1 < len(p) else torch.tensor(0.0, dtype=torch.float64)
    return float((p[i] + below) / 2), float(balanced[i])


def check_threshold(threshold: float, classes: Sequence[str]) -> None:
    """A decision threshold applies to a binary classifier and lies strictly in (0, 1)."""
    if not 0 < threshold < 1:
        raise UsageError(f"--threshold must lie strictly between 0 and 1 (got {threshold:g})")
    if len(classes) != 2:
        what = "is a regression model" if not classes else f"has {len(classes)} classes"
        raise UsageError(f"--threshold is for binary classifiers (2 classes); this model "
                         f"{what}")


def margin_threshold(threshold: float) -> float:
    """The margin logit[1] − logit[0] at which the positive probability equals `threshold`."""
    return math.log(threshold / (1 - threshold))


def watched_metrics(exps: Sequence[Experiment]) -> list[tuple[str, str]]:
    """(config key, metric) of every validation metric the members watch; the early-stopping
    monitor also picks the best epoch, with or without patience."""
    out: list[tuple[str, str]] = [
        ("training.early_stopping.monitor", e.training.early_stopping.monitor) for e in exps]
    return out + [("scheduler.monitor", e.scheduler.monitor) for e in exps
                  if e.scheduler.name == "plateau"]


def check_binary_monitors(monitors: Sequence[tuple[str, str]], n_classes: int,
                          task: str) -> None:
    """Refuse a binary-only metric (ROC-AUC, PR-AUC) watched on data that is not binary.

    Args:
        monitors: (config key, metric) pairs, e.g. ("training.early_stopping.monitor", ...).
    """
    for where, metric in monitors:
        if metric in BINARY_METRICS and (task != "classification" or n_classes != 2):
            what = "regression" if task != "classification" else f"{n_classes} classes"
            raise UsageError(f"{where}: {metric} needs a binary target (2 classes); the data "
                             f"has {what}")

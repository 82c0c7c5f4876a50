"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004). Pure numpy.

    chosen = greedy_select(val_probs, y_val, rounds=16)          # classification
    chosen = greedy_select(val_preds, y_val, rounds=16, regression=True)
    chosen.weights      # {member index: times chosen / members added}

Start from the empty ensemble; each round adds the member (one already chosen may be added
again) whose addition gives the ensemble the lowest validation score: the log loss of the
mean of the chosen members' probabilities (classification) or the RMSE of the mean of their
predictions (regression). All `rounds` additions are made (a round that does not lower the
score can still open the way to one that does); the ensemble kept is the shortest prefix with
the lowest score, as Caruana et al. return the best ensemble seen. Ties go to the lower member
index. A member's weight is the number of times it was chosen over the additions kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EPS", "Selection", "ensemble_score", "greedy_select"]

EPS = 1e-15  # probabilities are clipped to [EPS, 1] before the log


@dataclass(frozen=True)
class Selection:
    """The outcome of greedy selection.

    Attributes:
        order: the member chosen in each kept round, in order (repetitions included).
        scores: the ensemble's validation score after each kept round.
        weights: {member index: times chosen / rounds kept}, by member index; sums to 1.
    """

    order: list[int]
    scores: list[float]
    weights: dict[int, float]


def ensemble_score(outputs: np.ndarray, y: np.ndarray, *, regression: bool = False) -> float:
    """Log loss of probabilities (N, C) against class indices y (N,), or RMSE of predictions
    (N, T) against targets y (N, T) (regression)."""
    if regression:
        return float(np.sqrt(np.mean((outputs - y) ** 2)))
    picked = outputs[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(picked, EPS, 1.0))))


def greedy_select(outputs: np.ndarray, y: np.ndarray, rounds: int, *,
                  regression: bool = False) -> Selection:
    """Choose members and weights on one split (the validation split).

    Args:
        outputs: (K, N, C) each member's probabilities, or (K, N, T) predictions (regression).
        y: (N,) class indices, or (N, T) targets (regression).
        rounds: the most additions.
        regression: score by RMSE of the mean prediction instead of log loss.

    Raises:
        ValueError: no members, no rows or rounds < 1.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 3 or outputs.shape[0] == 0 or outputs.shape[1] == 0 or rounds < 1:
        raise ValueError(f"greedy selection needs (K, N, C) outputs with K, N > 0 and rounds "
                         f">= 1 (got shape {outputs.shape}, rounds {rounds})")
    total = np.zeros(outputs.shape[1:])  # the sum of the chosen members' outputs
    order: list[int] = []
    scores: list[float] = []
    for r in range(1, rounds + 1):
        candidates = [ensemble_score((total + o) / r, y, regression=regression)
                      for o in outputs]
        best = int(np.argmin(candidates))  # the first of equal scores: the lower index
        order.append(best)
        scores.append(candidates[best])
        total += outputs[best]
    keep = int(np.argmin(scores)) + 1  # the first lowest: the shortest best prefix
    order, scores = order[:keep], scores[:keep]
    counts = np.bincount(order, minlength=outputs.shape[0])
    weights = {k: int(c) / len(order) for k, c in enumerate(counts) if c}
    return Selection(order, scores, weights)

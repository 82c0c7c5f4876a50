"""Underfitting and overfitting said in words at the end of a run, measured from the
epochs' curves (slopes and gaps), never guessed. Pure: curves in, sentences out.

    diagnose(train_loss, val_loss, train_acc, val_acc)   # [] for a run that went well
    diagnose_members(result.member_histories)            # an ensemble's, by majority
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcnet_cli.events import EpochMetrics

__all__ = ["FALLING", "GAP_ACCURACY", "GAP_LOSS", "RISE", "diagnose", "diagnose_history",
           "diagnose_members", "window"]

FALLING = 0.01  # still improving: train loss falling ≥ 1% of its first epoch's value per
# epoch over the last window (a share of the first value: a loss near 0 falling by a large
# share of itself is done, not improving)...
RISE = 0.10  # overfitting: the last val loss ≥ 10% above its best...
GAP_ACCURACY = 0.10  # ...and train accuracy ≥ 10 points above validation's
GAP_LOSS = 2.0  # ...(regression: the val loss ≥ 2× the train loss)
MIN_EPOCHS = 4  # fewer epochs: no slope to measure


def window(epochs: int) -> int:
    """The last epochs the slope is measured over: a tenth of the run, at least 3."""
    return max(3, math.ceil(epochs / 10))


def diagnose(train_loss: Sequence[float], val_loss: Sequence[float],
             train_acc: Sequence[float] | None = None, val_acc: Sequence[float] | None = None,
             ) -> list[str]:
    """At most one line about underfitting and one about overfitting.

    Args:
        train_loss, val_loss: per epoch, in order (the training loss as the epoch averaged it).
        train_acc, val_acc: per epoch (classification); None or NaN for regression.

    Still improving: the training loss fell at least `FALLING` of its first epoch's value per
    epoch over the last `window` epochs and the best validation loss is among them.
    Overfitting: the last validation loss is `RISE` above its best, and train accuracy is
    `GAP_ACCURACY` above validation's (regression: the val loss `GAP_LOSS` times the train
    loss).
    """
    n = len(train_loss)
    finite = all(math.isfinite(v) for v in (*train_loss, *val_loss))
    if n < MIN_EPOCHS or len(val_loss) != n or not finite:
        return []
    lines = []
    w = min(window(n), n - 1)
    start, end = train_loss[-w - 1], train_loss[-1]
    per_epoch = (start - end) / train_loss[0] / w if train_loss[0] > 0 else 0.0
    best = min(range(n), key=val_loss.__getitem__)
    if per_epoch >= FALLING and best >= n - w:
        lines.append(f"still improving: the training loss fell {(start - end) / w:.3g} per "
                     f"epoch over the last {w} epochs ({per_epoch:.1%} of its first value) and "
                     f"validation was best at epoch {best + 1} of {n}: more epochs or a higher "
                     f"lr")
    rise = val_loss[-1] / val_loss[best] - 1 if val_loss[best] > 0 else 0.0
    classification = (train_acc is not None and val_acc is not None
                      and math.isfinite(train_acc[-1]) and math.isfinite(val_acc[-1]))
    if classification:
        assert train_acc is not None and val_acc is not None
        gap = train_acc[-1] - val_acc[-1]
        wide, said = gap >= GAP_ACCURACY, (f"train accuracy {train_acc[-1]:.3f} vs "
                                           f"{val_acc[-1]:.3f} on validation")
    else:
        wide = val_loss[-1] >= GAP_LOSS * train_loss[-1]
        said = f"val loss {val_loss[-1]:.4g} vs train loss {train_loss[-1]:.4g}"
    if rise >= RISE and wide:
        lines.append(f"overfitting: the val loss rose {rise:.0%} above its best (epoch "
                     f"{best + 1}), {said}: see regularization (weight_decay, dropout) or "
                     f"early stopping")
    return lines


def diagnose_history(history: Sequence[EpochMetrics]) -> list[str]:
    """`diagnose` of a run's epochs (`RunResult.history`)."""
    return diagnose([m.train_loss for m in history], [m.val_loss for m in history],
                    [m.train_accuracy for m in history], [m.val_accuracy for m in history])


def diagnose_members(histories: Sequence[Sequence[EpochMetrics]]) -> list[str]:
    """An ensemble's diagnosis: each kind of line (still improving, overfitting) that at
    least half of the members that trained get, as its first member's line with the count
    ("5 of 8 members: still improving: ..."). Members without epochs here are not counted."""
    trained = [diagnose_history(h) for h in histories if h]
    out = []
    for kind in ("still improving", "overfitting"):
        hits = [line for lines in trained for line in lines if line.startswith(kind)]
        if trained and 2 * len(hits) >= len(trained):
            out.append(f"{len(hits)} of {len(trained)} members: {hits[0]}")
    return out

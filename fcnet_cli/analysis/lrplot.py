"""The lr-find figure: the ramp's loss against lr, and the population's loss per lr, one PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.axes import Axes

from fcnet_cli.analysis.plots import new_figure, save_figure

if TYPE_CHECKING:
    from fcnet_cli.engine.train.lrfind import LrFindResult, PopulationScan

__all__ = ["plot_lr_find"]


def plot_lr_find(result: LrFindResult, out: str | Path) -> Path:
    """Left: batch loss (faint) and smoothed loss per step of the ramp; right: last-epoch
    training and validation loss of each population member; suggestions as dotted lines."""
    fig, (left, right) = new_figure(1, 2, 12, 4.6)
    ramp, scan = result.ramp, result.scan
    if ramp is not None and ramp.lrs:
        left.plot(ramp.lrs, ramp.losses, color="C0", alpha=0.3, lw=0.8, label="batch loss")
        left.plot(ramp.lrs, ramp.smoothed, color="C0", label="smoothed")
        if ramp.suggestion is not None:
            left.axvline(ramp.suggestion, color="C3", ls=":",
                         label=f"steepest descent: {ramp.suggestion:.3g}")
        top = min(max(ramp.smoothed[: max(1, len(ramp.smoothed) // 10)]) * 1.5,
                  max(ramp.losses))
        left.set_ylim(0, top)
        left.legend(fontsize="small")
    left.set_title("ramp: lr grows exponentially, one step per batch", fontsize="medium")
    if scan is not None:
        _draw_scan(right, scan)
    seeds = "" if scan is None or scan.seeds == 1 else f" (mean of {scan.seeds} seeds)"
    right.set_title(f"population: one member per lr, constant lr{seeds}", fontsize="medium")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    return save_figure(fig, out)


def _draw_scan(ax: Axes, scan: PopulationScan) -> None:
    """Loss per lr on a scale set by the smallest lr's loss; what diverged or left the scale
    is marked with an x at the top edge."""
    first = [v for v in (*scan.val_loss[:1], *scan.train_loss[:1]) if math.isfinite(v)]
    top = 1.3 * max(first) if first else None
    for key, style, color, label in (("train_loss", "--o", "C2", "training"),
                                     ("val_loss", "-o", "C1", "validation")):
        values = getattr(scan, key)
        shown = [v if math.isfinite(v) and (top is None or v <= top) else math.nan
                 for v in values]
        ax.plot(scan.lrs, shown, style, color=color, ms=4,
                label=f"{label} loss (epoch {scan.epochs})")
    if top is not None:
        gone = [lr for lr, v in zip(scan.lrs, scan.val_loss, strict=True)
                if not (math.isfinite(v) and v <= top)]
        if gone:
            ax.plot(gone, [top * 0.97] * len(gone), "x", color="black", ms=7,
                    label="diverged / off the scale")
        ax.set_ylim(0, top)
    if scan.suggestion is not None:
        ax.axvline(scan.suggestion, color="C3", ls=":",
                   label=f"lowest val loss: {scan.suggestion:.3g}")
    ax.legend(fontsize="small")

"""Matplotlib figures of runs and sweeps, drawn with the Agg canvas (no display, no pyplot).

Every function reads `RunRecord`s (what a run left on disk) and writes one PNG.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fcnet_cli.analysis.compare import RunRecord, metric_value

__all__ = ["colors", "new_figure", "plot_overlay", "plot_run", "plot_sweep", "save_figure"]

DPI = 80
MAX_LEGEND = 16


def new_figure(rows: int, cols: int, width: float = 10.0,
               height: float = 6.0) -> tuple[Figure, list[Axes]]:
    """A figure on an Agg canvas and its axes, flattened row by row."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Write the figure as PNG (parent folders created)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def colors(n: int) -> list[Any]:
    """n distinguishable colors (tab10, then tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _epochs(run: RunRecord) -> list[float]:
    return run.column("epoch")


def _epoch_axis(ax: Axes) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _log_if_wide(ax: Axes, values: Sequence[float], axis: str = "y") -> None:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) >= 20:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def plot_run(run: RunRecord, out: str | Path) -> Path:
    """Loss and accuracy (train dashed, val solid), learning rate and gap of one run."""
    fig, (loss, acc, lr, gap) = new_figure(2, 2, 10, 6.5)
    x = _epochs(run)
    # regression runs have no accuracy: their second panel is the RMSE (validation only)
    second = "rmse" if any(math.isfinite(v) for v in run.column("val_rmse")) else "accuracy"
    for ax, what in ((loss, "loss"), (acc, second)):
        ax.plot(x, run.column(f"train_{what}"), "--", color="C0", label=f"train {what}")
        ax.plot(x, run.column(f"val_{what}"), "-", color="C1", label=f"val {what}")
        ax.set_title(what)
    best = run.summary.get("best_epoch")
    for ax in (loss, acc, gap):
        if best:
            ax.axvline(best, color="grey", ls=":", lw=1, label=f"best epoch {best}")
        ax.legend(fontsize="small")
    lr.plot(x, run.column("lr"), color="C2")
    lr.set_title("learning rate (per epoch)")
    _log_if_wide(lr, run.column("lr"))
    gap.plot(x, run.column("gap_accuracy"), color="C3", label="train − val accuracy")
    gap.plot(x, run.column("gap_loss"), color="C4", label="val − train loss")
    gap.axhline(0, color="black", lw=0.5)
    gap.set_title("generalization gap")
    gap.legend(fontsize="small")
    for ax in (loss, acc, lr, gap):
        _epoch_axis(ax)
    title = f"{run.summary.get('name', '')} · {run.path.name}".strip(" ·")
    fig.suptitle(f"{title} ({run.summary.get('status', '?')})")
    return save_figure(fig, out)


def plot_overlay(runs: Sequence[RunRecord], out: str | Path,
                 metric: str = "val_accuracy") -> Path:
    """All runs' validation curves (solid) and training curves (dashed), loss and accuracy."""
    regression = any(math.isfinite(v) for r in runs for v in r.column("val_rmse"))
    other = "rmse" if regression else "accuracy"
    first = metric.removeprefix("val_") if metric != "val_loss" else other
    second = "loss" if first != "loss" else other
    fig, axes = new_figure(1, 2, 12, 5)
    palette = colors(len(runs))
    for ax, what in zip(axes, (first, second), strict=True):
        for i, (run, color) in enumerate(zip(runs, palette, strict=True)):
            label = run.name if i < MAX_LEGEND else None
            ax.plot(_epochs(run), run.column(f"val_{what}"), "-", color=color, label=label)
            ax.plot(_epochs(run), run.column(f"train_{what}"), "--", color=color, lw=0.9)
        ax.set_title(f"{what}: validation solid, training dashed")
        _epoch_axis(ax)
        if what == "loss":
            _log_if_wide(ax, [v for r in runs for v in r.column("train_loss")])
    if runs:
        more = f" (first {MAX_LEGEND} of {len(runs)} shown)" if len(runs) > MAX_LEGEND else ""
        axes[0].legend(fontsize="x-small", title=f"run{more}", title_fontsize="x-small")
    return save_figure(fig, out)


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def plot_sweep(runs: Sequence[RunRecord], params: Sequence[str], out: str | Path,
               metric: str = "val_accuracy") -> Path:
    """The best validation metric of every run against each swept parameter (mean line)."""
    params = list(params) or ["(none)"]
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = new_figure(rows, cols, 4.2 * cols, 3.4 * rows)
    done = [r for r in runs if metric_value(r, metric) is not None]
    for ax, param in zip(axes, params, strict=False):
        _sweep_axis(ax, done, param, metric)
    for ax in axes[len(params):]:
        ax.set_visible(False)
    fig.suptitle(f"best {metric} per run against each swept parameter")
    return save_figure(fig, out)


def _sweep_axis(ax: Axes, runs: Sequence[RunRecord], param: str, metric: str) -> None:
    raw = [r.config.get(param) for r in runs]
    values = [metric_value(r, metric) for r in runs]
    ys = [math.nan if v is None else v for v in values]
    if _numeric(raw):
        xs = [float(v) for v in raw if v is not None]
        _log_if_wide(ax, xs, "x")
        labels: list[str] | None = None
    else:
        labels = sorted({json.dumps(v) if isinstance(v, list) else str(v) for v in raw})
        texts = [json.dumps(v) if isinstance(v, list) else str(v) for v in raw]
        xs = [float(labels.index(t)) for t in texts]
    ax.scatter(xs, ys, s=18, alpha=0.7)
    means = {}
    for x in sorted(set(xs)):
        group = [y for xx, y in zip(xs, ys, strict=True) if xx == x]
        means[x] = sum(group) / len(group)
    ax.plot(list(means), list(means.values()), "-", color="C1", lw=1, label="mean")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize="small")
        ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xlabel(param)
    ax.set_ylabel(f"best {metric}")
    ax.grid(alpha=0.3)

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
from fcnet_cli.metrics import best_first, label

__all__ = ["best_runs", "colors", "gap_limits", "jitter", "new_figure", "panel_metrics",
           "plot_overlay", "plot_run", "plot_sweep", "run_label", "save_figure"]

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


def _regularized(run: RunRecord) -> bool:
    """An explicit penalty or weight decay: the run where per-layer weights tell a story."""
    c = run.config
    return c.get("regularization.type", "none") != "none" or bool(
        c.get("optimizer.weight_decay") or 0)


def plot_run(run: RunRecord, out: str | Path) -> Path:
    """Loss and accuracy (train dashed, val solid), learning rate and gap of one run; for a
    run with L1/L2 or weight decay also the sparsity and ‖W‖ of every layer."""
    weights = _regularized(run) and bool(run.layers())
    fig, axes = new_figure(3 if weights else 2, 2, 10, 9.5 if weights else 6.5)
    loss, acc, lr, gap = axes[:4]
    x = _epochs(run)
    second, monitored = panel_metrics(run)
    for ax, what in ((loss, "loss"), (acc, second)):
        _curves(ax, run, x, what)
    if monitored is not None:  # the metric that picked the best epoch, next to accuracy
        acc.plot(x, run.column(monitored), "-", color="C2", label=label(monitored))
    acc.set_title(second if monitored is None else f"{second}; monitored: {label(monitored)}")
    _lr_panel(lr, x, run.column("lr"))
    _gap_panel(gap, x, run.column("gap_accuracy"), run.column("gap_loss"))
    best = run.summary.get("best_epoch")
    for ax in (loss, acc, gap):
        if best:
            ax.axvline(best, color="grey", ls=":", lw=1, label=f"best epoch {best}")
        ax.legend(fontsize="small")
    if weights:
        _weights_panels(axes[4], axes[5], run)
    for ax in axes:
        _epoch_axis(ax)
    title = f"{run.summary.get('name', '')} · {run.path.name}".strip(" ·")
    fig.suptitle(f"{title} ({run.summary.get('status', '?')})")
    return save_figure(fig, out)


def _finite(values: Sequence[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def panel_metrics(run: RunRecord) -> tuple[str, str | None]:
    """The second panel's metric and the monitored metric drawn on it too (or None).

    Regression runs have no accuracy: their panel is the monitored one of rmse / mae / r2
    (rmse when the loss is monitored). Classification runs show accuracy and, when the run
    monitors balanced accuracy or macro F1, that validation curve as well.
    """
    monitor = str(run.summary.get("monitor") or "val_loss")
    if _finite(run.column("val_rmse")):
        shown = monitor if monitor in ("val_rmse", "val_mae", "val_r2") else "val_rmse"
        return shown.removeprefix("val_"), None
    extra = monitor if monitor not in ("val_loss", "val_accuracy") and _finite(
        run.column(monitor)) else None
    return "accuracy", extra


def _curves(ax: Axes, run: RunRecord, x: list[float], what: str) -> None:
    """Training (dashed) and validation (solid) curves of one metric; a curve the run did
    not record (a regression run's train rmse) is neither drawn nor in the legend."""
    for split, style, color in (("train", "--", "C0"), ("val", "-", "C1")):
        values = run.column(f"{split}_{what}")
        if _finite(values):
            ax.plot(x, values, style, color=color, label=f"{split} {what}")
    ax.set_title(what)


def _lr_panel(ax: Axes, x: list[float], lrs: list[float]) -> None:
    ax.plot(x, lrs, color="C2")
    ax.set_title("learning rate (per epoch)")
    finite = [v for v in lrs if math.isfinite(v)]
    if finite and max(finite) - min(finite) <= 1e-12 * max(abs(max(finite)), 1e-300):
        # constant: an axis from 0 shows it as the flat line it is, not as noise around it
        ax.set_ylim(0, max(finite) * 1.5 if max(finite) > 0 else 1)
        ax.set_title(f"learning rate: constant {finite[0]:g}")
        return
    _log_if_wide(ax, lrs)


def gap_limits(*series: Sequence[float]) -> tuple[float, float] | None:
    """y limits for the gap panel from epoch 2 on (epoch 1's gap, often large, would flatten
    the rest), with 10 % margins and 0 always in view; None when there is nothing to set."""
    later = [v for values in series for v in values[1:] if math.isfinite(v)]
    if len(later) < 2:
        return None
    lo, hi = min(0.0, *later), max(0.0, *later)
    pad = 0.1 * (hi - lo) or 0.01
    return lo - pad, hi + pad


def _gap_panel(ax: Axes, x: list[float], accuracy: list[float], loss: list[float]) -> None:
    if _finite(accuracy):  # regression runs have no accuracy gap
        ax.plot(x, accuracy, color="C3", label="train − val accuracy")
    ax.plot(x, loss, color="C4", label="val − train loss")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title("generalization gap")
    limits = gap_limits(accuracy, loss)
    if limits is not None:
        ax.set_ylim(*limits)
        first = [v for v in (accuracy[:1] + loss[:1]) if math.isfinite(v)]
        if any(not limits[0] <= v <= limits[1] for v in first):
            ax.set_title("generalization gap (epoch 1 off the axis)")


def _weights_panels(sparsity: Axes, norms: Axes, run: RunRecord) -> None:
    x = _epochs(run)
    palette = colors(len(run.layers()))
    # layers by their order (1, 2, 3), not by their module index in nn.Sequential (0, 3, 6)
    for i, (layer, color) in enumerate(zip(run.layers(), palette, strict=True)):
        sparsity.plot(x, run.column(f"sparsity_{layer}"), color=color, label=f"layer {i + 1}")
        norms.plot(x, run.column(f"l2_norm_{layer}"), color=color, label=f"layer {i + 1}")
    reg = run.config.get("regularization.type", "none")
    sparsity.set_title(f"fraction of weights with |w| < 1e-3 ({reg})")
    sparsity.set_ylim(-0.02, 1.02)
    norms.set_title("‖W‖₂ per layer")
    for ax in (sparsity, norms):
        ax.legend(fontsize="small")


def run_label(run: RunRecord, params: Sequence[str]) -> str:
    """A run by its values of `params` (`lr=0.05 momentum=0.9`), or by its name."""
    if not params:
        return run.name
    parts = []
    for key in params:
        v = run.config.get(key)
        shown = format(v, "g") if isinstance(v, float) else json.dumps(v) if isinstance(
            v, list | bool) or v is None else str(v)
        parts.append(f"{key.rpartition('.')[2]}={shown}")
    return " ".join(parts)


def best_runs(runs: Sequence[RunRecord], metric: str, best: int) -> list[RunRecord]:
    """The `best` runs by their best `metric` (all when best <= 0), best first."""
    scored = best_first((r for r in runs if metric_value(r, metric) is not None), metric,
                        value=lambda r: metric_value(r, metric))
    return scored[:best] if best > 0 else scored


def plot_overlay(runs: Sequence[RunRecord], out: str | Path, metric: str = "val_accuracy",
                 best: int = 10, params: Sequence[str] | None = None) -> Path:
    """The `best` runs' validation curves (solid) and training curves (dashed), loss and
    accuracy, labelled by their values of `params` (default: the keys that differ)."""
    from fcnet_cli.analysis.compare import differing_params

    shown = best_runs(runs, metric, best)
    keys = list(params) if params is not None else differing_params(
        shown, exclude=("training.seed",))
    regression = any(math.isfinite(v) for r in runs for v in r.column("val_rmse"))
    other = "rmse" if regression else "accuracy"
    first = metric.removeprefix("val_") if metric != "val_loss" else other
    second = "loss" if first != "loss" else other
    fig, axes = new_figure(1, 2, 12, 5)
    palette = colors(len(shown))
    for ax, what in zip(axes, (first, second), strict=True):
        for i, (run, color) in enumerate(zip(shown, palette, strict=True)):
            label = run_label(run, keys) if i < MAX_LEGEND else None
            ax.plot(_epochs(run), run.column(f"val_{what}"), "-", color=color, label=label)
            ax.plot(_epochs(run), run.column(f"train_{what}"), "--", color=color, lw=0.9)
        ax.set_title(f"{what}: validation solid, training dashed")
        _epoch_axis(ax)
        if what == "loss":
            _log_if_wide(ax, [v for r in shown for v in r.column("train_loss")])
    if shown:
        head = f"best {len(shown)} of {len(runs)} runs by {metric}" if len(shown) < len(
            runs) else f"{len(runs)} runs"
        axes[0].legend(fontsize="x-small", title=head, title_fontsize="x-small")
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


def jitter(xs: Sequence[float], spread: float, *, log: bool, seed: int = 0) -> list[float]:
    """xs moved by up to ±spread (a fraction of one category, or of a decade on a log axis)
    so that repeated values (seeds) do not hide each other; seeded, so figures repeat."""
    import random

    rng = random.Random(seed)
    if log:
        return [x * 10 ** rng.uniform(-spread, spread) for x in xs]
    return [x + rng.uniform(-spread, spread) for x in xs]


def _sweep_axis(ax: Axes, runs: Sequence[RunRecord], param: str, metric: str) -> None:
    raw = [r.config.get(param) for r in runs]
    values = [metric_value(r, metric) for r in runs]
    ys = [math.nan if v is None else v for v in values]
    labels: list[str] | None = None
    if _numeric(raw):
        xs = [float(v) for v in raw if v is not None]
        _log_if_wide(ax, xs, "x")
        log = ax.get_xscale() == "log"
        distinct = sorted(set(xs))
        gaps = [b - a for a, b in zip(distinct, distinct[1:], strict=False)]
        spread = 0.03 if log else 0.15 * min(gaps) if gaps else 0.0
        shown = jitter(xs, spread, log=log)
    else:
        labels = sorted({json.dumps(v) if isinstance(v, list) else str(v) for v in raw})
        texts = [json.dumps(v) if isinstance(v, list) else str(v) for v in raw]
        xs = [float(labels.index(t)) for t in texts]
        shown = jitter(xs, 0.12, log=False)
    ax.scatter(shown, ys, s=18, alpha=0.6, label="one run (jittered)")
    means = {}
    for x in sorted(set(xs)):
        group = [y for xx, y in zip(xs, ys, strict=True) if xx == x]
        means[x] = sum(group) / len(group)
    ax.plot(list(means), list(means.values()), "-", color="C1", lw=1.2,
            label="mean over runs")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize="small")
        ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xlabel(param)
    ax.set_ylabel(f"best {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")

"""The studies' figures (one PNG per study), drawn from their run directories."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from fcnet_cli.analysis.compare import RunRecord, weight_totals
from fcnet_cli.analysis.plots import colors, new_figure, save_figure
from fcnet_cli.studies.groups import Group, last, test_accuracy

__all__ = ["l1_vs_l2", "lr_decay", "mean_curve", "momentum", "overfitting", "weights_of"]

Label = Callable[[dict[str, Any]], str]
HIST_BINS = [-6 + 0.1 * i for i in range(66)]  # log10 |w| from -6 to 0.5


def mean_curve(runs: Sequence[RunRecord], fn: Callable[[RunRecord], list[float]]
               ) -> tuple[list[int], list[float]]:
    """Epoch-wise mean over seeds (a run that stopped early counts until it stopped)."""
    curves = [fn(r) for r in runs]
    n = max((len(c) for c in curves), default=0)
    ys = []
    for i in range(n):
        vals = [c[i] for c in curves if i < len(c) and math.isfinite(c[i])]
        ys.append(statistics.fmean(vals) if vals else math.nan)
    return list(range(1, n + 1)), ys


def _column(key: str) -> Callable[[RunRecord], list[float]]:
    return lambda r: r.column(key)


def _finish(ax: Axes, title: str, xlabel: str = "epoch") -> None:
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if xlabel == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _bars(ax: Axes, labels: list[str], values: list[float], fam: list[int]) -> None:
    palette = colors(max(fam) + 1)
    ax.barh(range(len(labels)), values, color=[palette[f] for f in fam])
    ax.set_yticks(range(len(labels)), labels, fontsize="x-small")
    ax.invert_yaxis()


def overfitting(groups: Sequence[Group], label: Label, out: Path) -> Path:
    """Train/val accuracy of four representatives; last-epoch gap and test accuracy per config."""

    fig, (curves, gap, test) = new_figure(1, 3, 15, 5)
    kinds = [g.runs[0].config.get("regularization.type", "none") for g in groups]
    fam = [("none", "l1", "l2", "elastic_net").index(k) for k in kinds]
    chosen = []
    for kind, dropout in (("none", False), ("none", True), ("l1", None), ("l2", None)):
        pool = [g for g, k in zip(groups, kinds, strict=True) if k == kind and (
            dropout is None or bool(g.runs[0].config.get("model.dropout")) == dropout)]
        if pool:
            chosen.append(max(pool, key=lambda g: g.mean(test_accuracy)))
    for g, color in zip(chosen, colors(len(chosen)), strict=True):
        x, ys = mean_curve(g.runs, _column("val_accuracy"))
        curves.plot(x, ys, "-", color=color, label=label(g.runs[0].config))
        x, ys = mean_curve(g.runs, _column("train_accuracy"))
        curves.plot(x, ys, "--", color=color, lw=0.9)
    curves.legend(fontsize="x-small", title="best test acc of each kind", title_fontsize="x-small")
    _finish(curves, "accuracy: validation solid, training dashed")
    labels = [label(g.runs[0].config) for g in groups]
    _bars(gap, labels, [g.mean(last("gap_accuracy")) for g in groups], fam)
    _finish(gap, "gap at the last epoch (train − val accuracy)", "gap")
    accs = [g.mean(test_accuracy) for g in groups]
    _bars(test, labels, accs, fam)
    finite = [a for a in accs if math.isfinite(a)]
    if finite:
        test.set_xlim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.02))
    _finish(test, "test accuracy (best checkpoint)", "accuracy")
    return save_figure(fig, out)


def weights_of(run: RunRecord, layer: str) -> list[float]:
    """|w| of one Linear's weight matrix in the run's last checkpoint ([] when absent)."""
    path = run.path / "checkpoints" / "last" / "model.safetensors"
    if not path.is_file():
        return []
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    w = tensors.get(f"{layer}.weight")
    return [] if w is None else [abs(float(v)) for v in w.ravel()]


def _grouped(ax: Axes, groups: Sequence[Group], label: Label, layers: list[str],
             names: list[str], key: str) -> None:

    width = 0.8 / max(1, len(groups))
    for i, (g, color) in enumerate(zip(groups, colors(len(groups)), strict=True)):
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(layers))]
        ax.bar(xs, [g.mean(last(f"{key}_{n}")) for n in layers], width, color=color,
               label=label(g.runs[0].config))
    ax.set_xticks(range(len(layers)), names, fontsize="x-small")


def l1_vs_l2(groups: Sequence[Group], label: Label, names: list[str], out: Path) -> Path:
    """Sparsity and L2 norm per layer, first-layer |w| histogram, sparsity over epochs."""
    fig, (sparse, norm, hist, trend) = new_figure(2, 2, 12, 8)
    layers = groups[0].runs[0].layers()
    _grouped(sparse, groups, label, layers, names, "sparsity")
    _finish(sparse, "fraction of weights with |w| < 1e-3 (last epoch)", "layer")
    sparse.legend(fontsize="x-small")
    _grouped(norm, groups, label, layers, names, "l2_norm")
    _finish(norm, "‖W‖₂ per layer (last epoch)", "layer")
    for g, color in zip(groups, colors(len(groups)), strict=True):
        w = [max(v, 1e-6) for v in weights_of(g.runs[0], layers[0])]
        if w:  # shared bins; |w| below 1e-6 is counted in the first one
            hist.hist([math.log10(v) for v in w], bins=HIST_BINS, histtype="step", color=color,
                      label=label(g.runs[0].config))
        x, ys = mean_curve(g.runs, lambda r: [weight_totals(row, r)[0] for row in r.metrics])
        trend.plot(x, ys, color=color, label=label(g.runs[0].config))
    hist.axvline(-3, color="black", ls=":", lw=1)
    _finish(hist, f"log10 |w| of {names[0]}, seed 0, last epoch", "log10 |w|")
    _finish(trend, "fraction of all weights with |w| < 1e-3")
    return save_figure(fig, out)


def _styled(groups: Sequence[Group], key: str) -> list[tuple[Group, Any, str]]:
    """One color per value of `key` (e.g. momentum), solid then dashed for repeats."""
    values = list(dict.fromkeys(str(g.runs[0].config.get(key)) for g in groups))
    palette = colors(len(values))
    seen: dict[str, int] = {}
    out = []
    for g in groups:
        v = str(g.runs[0].config.get(key))
        seen[v] = seen.get(v, 0) + 1
        out.append((g, palette[values.index(v)], "-" if seen[v] == 1 else "--"))
    return out


def momentum(groups: Sequence[Group], label: Label, threshold: float, out: Path) -> Path:
    """Training and validation loss per epoch (mean over seeds), log scale."""
    fig, (train, val) = new_figure(1, 2, 12, 4.8)
    for g, color, style in _styled(groups, "optimizer.momentum"):
        for ax, key in ((train, "train_loss"), (val, "val_loss")):
            x, ys = mean_curve(g.runs, _column(key))
            ax.plot(x, ys, style, color=color, label=label(g.runs[0].config))
    train.axhline(threshold, color="black", ls=":", lw=1, label=f"threshold {threshold:g}")
    for ax, title in ((train, "training loss (Nesterov dashed)"), (val, "validation loss")):
        ax.set_yscale("log")
        _finish(ax, title)
    train.legend(fontsize="x-small")
    return save_figure(fig, out)


def lr_decay(groups: Sequence[Group], label: Label, out: Path) -> Path:
    """Learning rate, training loss and validation loss per epoch (mean over seeds)."""
    fig, (lr, train, val) = new_figure(1, 3, 15, 4.6)
    for g, color, style in _styled(groups, "scheduler.name"):
        for ax, key in ((lr, "lr"), (train, "train_loss"), (val, "val_loss")):
            x, ys = mean_curve(g.runs, _column(key))
            ax.plot(x, ys, style, color=color, label=label(g.runs[0].config))
    for ax, title in ((lr, "learning rate"), (train, "training loss"), (val, "validation loss")):
        ax.set_yscale("log")
        _finish(ax, title)
    lr.legend(fontsize="x-small")
    return save_figure(fig, out)

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
from fcnet_cli.analysis.stats import summarize
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.studies.groups import Group, last

__all__ = ["band", "l1_vs_l2", "lr_decay", "mean_curve", "momentum", "overfitting",
           "weights_of"]

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


def _bars(ax: Axes, labels: list[str], groups: Sequence[Group],
          fn: Callable[[RunRecord], float], palette: Sequence[Any]) -> None:
    """Horizontal bars of the mean over seeds, with the 95 % t-interval as error bars."""
    sums = [summarize(g.values(fn)) for g in groups]
    err = [s.half_width if s.n > 1 else 0.0 for s in sums]
    ax.barh(range(len(labels)), [s.mean for s in sums], xerr=err, color=palette,
            error_kw={"elinewidth": 1, "capsize": 3})
    ax.set_yticks(range(len(labels)), labels, fontsize="small")
    ax.invert_yaxis()


def band(ax: Axes, runs: Sequence[RunRecord], fn: Callable[[RunRecord], list[float]],
         color: Any, label: str | None, style: str = "-") -> None:
    """The epoch-wise mean over seeds as a line, ± one standard deviation as a band."""
    x, ys = mean_curve(runs, fn)
    ax.plot(x, ys, style, color=color, label=label, lw=1.4 if style == "-" else 1.0)
    if len(runs) > 1 and style == "-":
        curves = [fn(r) for r in runs]
        sd = [statistics.stdev([c[i] for c in curves if i < len(c) and math.isfinite(c[i])])
              if sum(1 for c in curves if i < len(c) and math.isfinite(c[i])) > 1 else 0.0
              for i in range(len(x))]
        ax.fill_between(x, [y - d for y, d in zip(ys, sd, strict=True)],
                        [y + d for y, d in zip(ys, sd, strict=True)], color=color, alpha=0.15,
                        lw=0)


def overfitting(groups: Sequence[Group], label: Label, out: Path) -> Path:
    """Train/val accuracy per epoch (mean ± std over seeds); last-epoch gap and validation
    accuracy per configuration with 95 % intervals."""
    fig, (curves, gap, val) = new_figure(1, 3, 15, 5)
    labels = [label(g.runs[0].config) for g in groups]
    palette = colors(len(groups))
    for g, name, color in zip(groups, labels, palette, strict=True):
        band(curves, g.runs, _column("val_accuracy"), color, name)
        band(curves, g.runs, _column("train_accuracy"), color, None, "--")
    curves.legend(fontsize="x-small")
    _finish(curves, "accuracy: validation solid (± std band), training dashed")
    _bars(gap, labels, groups, last("gap_accuracy"), palette)
    gap.axvline(0, color="black", lw=0.6)
    _finish(gap, "gap at the last epoch (train − val accuracy), 95 % interval", "gap")
    _bars(val, labels, groups, last("val_accuracy"), palette)
    _finish(val, "validation accuracy at the last epoch, 95 % interval", "accuracy")
    return save_figure(fig, out)


def weights_of(run: RunRecord, layer: str) -> list[float]:
    """|w| of one Linear's weight matrix in the run's last checkpoint ([] when absent)."""
    path = RunDir(run.path).checkpoint(RunDir.LAST) / RunDir.WEIGHTS
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
    """Learning rate (linear scale), training loss (log), validation loss and accuracy per
    epoch; lines are means over seeds, bands ± one standard deviation."""
    fig, (lr, train, val, acc) = new_figure(1, 4, 18, 4.6)
    palette = colors(len(groups))
    for g, color in zip(groups, palette, strict=True):
        name = label(g.runs[0].config)
        lr.plot(*mean_curve(g.runs, _column("lr")), color=color, label=name)
        for ax, key in ((train, "train_loss"), (val, "val_loss"), (acc, "val_accuracy")):
            band(ax, g.runs, _column(key), color, name)
    train.set_yscale("log")
    for ax, title in ((lr, "learning rate (per epoch)"), (train, "training loss (log scale)"),
                      (val, "validation loss"), (acc, "validation accuracy")):
        _finish(ax, title)
    lr.legend(fontsize="x-small")
    return save_figure(fig, out)

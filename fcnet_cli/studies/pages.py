"""The four studies' tables and observations, computed from their run directories.

Each `analyse` function takes the study's runs (`report.RunRecord`, seeds included) and a
figure folder, draws its figure (`study_figures`) and returns a Markdown section. Values are
means over the seeds of one configuration; observations are sentences filled in from those
values, never written by hand.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.compare import RunRecord, markdown_table, weight_totals
from fcnet_cli.studies import figures as figs
from fcnet_cli.studies.groups import (
    best_val_accuracy,
    group_runs,
    last,
    test_accuracy,
)

__all__ = [
    "LOSS_THRESHOLD",
    "Section",
    "epochs_to",
    "l1_vs_l2",
    "lr_decay",
    "momentum",
    "oscillation",
    "overfitting",
]

LOSS_THRESHOLD = 0.1  # momentum study: first epoch whose mean training loss is at most this


@dataclass
class Section:
    markdown: str
    figures: list[Path] = field(default_factory=list)


def ms(values: Sequence[float], spec: str = ".3f") -> str:
    """'mean ± std' over seeds (just the mean for one seed); '-' when nothing is finite."""
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return "-"
    if len(vals) == 1:
        return format(vals[0], spec)
    return f"{format(statistics.fmean(vals), spec)} ± {format(statistics.stdev(vals), spec)}"


def _num(x: float, spec: str = ".3f") -> str:
    return format(x, spec) if math.isfinite(x) else "-"


def _g(x: Any) -> str:
    return format(x, "g") if isinstance(x, int | float) else str(x)


# ---------------------------------------------------------------- 1. overfitting


def reg_label(cfg: dict[str, Any]) -> str:
    kind = cfg.get("regularization.type", "none")
    text = "none" if kind == "none" else \
        f"{kind.upper()} λ={_g(cfg.get('regularization.strength'))}"
    drop = cfg.get("model.dropout", 0.0)
    return f"{text} + dropout {_g(drop)}" if drop else text


def overfitting(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    heads = ["regularization", "train acc (last)", "val acc (last)", "gap acc (last)",
             "gap loss (last)", "best val acc", "test acc"]
    rows = [[reg_label(g.runs[0].config), ms(g.values(last("train_accuracy"))),
             ms(g.values(last("val_accuracy"))), ms(g.values(last("gap_accuracy"))),
             ms(g.values(last("gap_loss"))), ms(g.values(best_val_accuracy)),
             ms(g.values(test_accuracy))] for g in groups]
    gap = {reg_label(g.runs[0].config): g.mean(last("gap_accuracy")) for g in groups}
    test = {reg_label(g.runs[0].config): g.mean(test_accuracy) for g in groups}
    widest, narrowest = max(gap, key=gap.__getitem__), min(gap, key=gap.__getitem__)
    best = max(test, key=test.__getitem__)
    n_train = _n_train(runs)
    notes = [
        f"- Training split: {n_train}. Without any regularization the last-epoch gap "
        f"is {_num(gap.get('none', math.nan))} (train − val accuracy) and test accuracy "
        f"{_num(test.get('none', math.nan))}.",
        f"- Largest gap: {widest} ({_num(gap[widest])}); smallest: {narrowest} "
        f"({_num(gap[narrowest])}, test accuracy {_num(test[narrowest])}).",
        f"- Highest test accuracy: {best} ({_num(test[best])}, gap {_num(gap[best])}).",
    ]
    fig = figs.overfitting(groups, reg_label, figures / "overfitting.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(notes), [fig])


def _n_train(runs: Sequence[RunRecord]) -> str:
    frac = [r.config.get("data.val_fraction", 0.0) + r.config.get("data.test_fraction", 0.0)
            for r in runs[:1]]
    return f"about {round((1 - frac[0]) * 100)} % of the data set" if frac else "?"


# ---------------------------------------------------------------- 2. L1 vs L2


def layer_names(run: RunRecord) -> list[str]:
    """'Linear 0 (64×128)' per weight matrix, from the widths when they are known."""
    names = run.layers()
    widths = [run.in_features, *run.config.get("model.hidden", []), run.n_classes]
    if None in widths or len(widths) != len(names) + 1:
        return [f"Linear {n}" for n in names]
    return [f"Linear {n} ({a}→{b})" for n, a, b in zip(names, widths, widths[1:], strict=False)]


def l1_vs_l2(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    layers = runs[0].layers()
    names = layer_names(runs[0])
    heads = ["regularization", "layer", "|w|<1e-3 (last)", "‖W‖₂ (last)", "Σ|w| (last)"]
    rows = []
    for g in groups:
        for layer, name in zip(layers, names, strict=True):
            rows.append([reg_label(g.runs[0].config), name,
                         ms(g.values(last(f"sparsity_{layer}"))),
                         ms(g.values(last(f"l2_norm_{layer}")), ".2f"),
                         ms(g.values(last(f"l1_norm_{layer}")), ".1f")])
    total = {reg_label(g.runs[0].config): g for g in groups}
    heads2 = ["regularization", "all weights |w|<1e-3", "total ‖W‖₂", "val acc (last)",
              "test acc"]

    def totals(r: RunRecord) -> tuple[float, float]:
        return weight_totals(r.metrics[-1], r) if r.metrics else (math.nan, math.nan)

    rows2 = [[label, ms(g.values(lambda r: totals(r)[0])),
              ms(g.values(lambda r: totals(r)[1]), ".2f"),
              ms(g.values(last("val_accuracy"))), ms(g.values(test_accuracy))]
             for label, g in total.items()]
    sparsest = max(total, key=lambda k: total[k].mean(lambda r: totals(r)[0]))
    smallest = min(total, key=lambda k: total[k].mean(lambda r: totals(r)[1]))
    none = total.get("none")
    notes = [
        f"- Highest fraction of near-zero weights: {sparsest} "
        f"({_num(total[sparsest].mean(lambda r: totals(r)[0]))}, vs "
        f"{_num(none.mean(lambda r: totals(r)[0]) if none else math.nan)} without "
        f"regularization).",
        f"- Smallest total weight norm: {smallest} "
        f"({_num(total[smallest].mean(lambda r: totals(r)[1]), '.2f')}, vs "
        f"{_num(none.mean(lambda r: totals(r)[1]) if none else math.nan, '.2f')} without).",
    ]
    fig = figs.l1_vs_l2(groups, reg_label, names, figures / "l1_vs_l2.png")
    text = (markdown_table(heads2, rows2) + "\n" + "\n".join(notes) + "\n\nPer layer:\n\n"
            + markdown_table(heads, rows))
    return Section(text, [fig])


# ---------------------------------------------------------------- 3. momentum


def epochs_to(losses: Sequence[float], threshold: float) -> int | None:
    """1-based first epoch whose loss is at most `threshold` (None: never)."""
    return next((i + 1 for i, v in enumerate(losses) if v <= threshold), None)


def oscillation(losses: Sequence[float]) -> float:
    """Total rise of a loss curve, Σ max(0, L_t − L_{t−1}): 0 for a steady descent."""
    finite = [v for v in losses if math.isfinite(v)]
    return sum(max(0.0, b - a) for a, b in zip(finite, finite[1:], strict=False))


def momentum_label(cfg: dict[str, Any]) -> str:
    mu = cfg.get("optimizer.momentum", 0.0)
    return f"μ={_g(mu)}" + (" Nesterov" if cfg.get("optimizer.nesterov") else "")


def momentum(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    heads = ["momentum", f"epochs to train loss ≤ {LOSS_THRESHOLD:g} (per seed)",
             "train loss (last)", "val loss (last)", "oscillation (train)", "best val acc",
             "test acc", "status"]
    rows, reached = [], {}
    for g in groups:
        label = momentum_label(g.runs[0].config)
        hits = [epochs_to(r.column("train_loss"), LOSS_THRESHOLD) for r in g.runs]
        reached[label] = hits
        rows.append([label, ", ".join("never" if h is None else str(h) for h in hits),
                     ms(g.values(last("train_loss")), ".4f"),
                     ms(g.values(last("val_loss")), ".4f"),
                     ms(g.values(lambda r: oscillation(r.column("train_loss"))), ".4f"),
                     ms(g.values(best_val_accuracy)), ms(g.values(test_accuracy)),
                     ", ".join(sorted({str(r.summary.get("status")) for r in g.runs}))])
    fastest = min((k for k, v in reached.items() if None not in v),
                  key=lambda k: statistics.fmean(h for h in reached[k] if h is not None),
                  default=None)
    shaky = max(groups, key=lambda g: g.mean(lambda r: oscillation(r.column("train_loss"))))
    rise = shaky.mean(lambda r: oscillation(r.column("train_loss")))
    notes = ["- Oscillation: the total rise of the per-epoch training loss, "
             "Σ max(0, L_t − L_(t−1)); 0 means it fell every epoch. " + (
                 f"Largest: {momentum_label(shaky.runs[0].config)} ({_num(rise, '.4f')})."
                 if rise > 0 else "It fell every epoch in every run.")]
    if fastest is not None:
        notes.append(f"- Fastest to a training loss ≤ {LOSS_THRESHOLD:g} on every seed: "
                     f"{fastest} (epochs {', '.join(str(h) for h in reached[fastest])}).")
    never = [k for k, v in reached.items() if all(h is None for h in v)]
    if never:
        notes.append(f"- Never reached it within {len(runs[0].metrics)} epochs: "
                     f"{', '.join(never)}.")
    fig = figs.momentum(groups, momentum_label, LOSS_THRESHOLD, figures / "momentum.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(notes), [fig])


# ---------------------------------------------------------------- 4. learning-rate decay


def decay_label(cfg: dict[str, Any]) -> str:
    name = cfg.get("scheduler.name", "none")
    if name in ("step", "multistep", "exponential"):
        return f"{name} γ={_g(cfg.get('scheduler.gamma'))}"
    return "constant" if name == "none" else name


def lr_decay(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    heads = ["schedule", "lr (last)", "train loss (last)", "val loss (last)", "val acc (last)",
             "best val loss", "test acc"]
    rows = [[decay_label(g.runs[0].config), ms(g.values(last("lr")), ".2g"),
             ms(g.values(last("train_loss")), ".4f"), ms(g.values(last("val_loss")), ".4f"),
             ms(g.values(last("val_accuracy"))),
             ms(g.values(lambda r: min(r.column("val_loss"), default=math.nan)), ".4f"),
             ms(g.values(test_accuracy))] for g in groups]
    final = {decay_label(g.runs[0].config): g.mean(last("val_loss")) for g in groups}
    test = {decay_label(g.runs[0].config): g.mean(test_accuracy) for g in groups}
    lowest = min(final, key=final.__getitem__)
    best = max(test, key=test.__getitem__)
    notes = [
        f"- Lowest final validation loss: {lowest} ({_num(final[lowest], '.4f')}; constant "
        f"learning rate: {_num(final.get('constant', math.nan), '.4f')}).",
        f"- Highest test accuracy: {best} ({_num(test[best])}; constant: "
        f"{_num(test.get('constant', math.nan))}).",
    ]
    fig = figs.lr_decay(groups, decay_label, figures / "lr_decay.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(notes), [fig])

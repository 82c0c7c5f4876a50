"""The optimization studies (momentum, learning-rate decay): tables and tested findings.

Like `pages.py`: each `analyse` function reads the study's runs, draws its figure and returns
a Markdown section whose findings are Welch-tested contrasts over seeds (`findings.contrast`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.compare import RunRecord, markdown_table
from fcnet_cli.studies import figures as figs
from fcnet_cli.studies.findings import contrast
from fcnet_cli.studies.groups import Group, best_val_accuracy, group_runs, last, test_accuracy
from fcnet_cli.studies.pages import Section, ms

__all__ = ["JITTER_EPOCHS", "LOSS_THRESHOLD", "decay_label", "epochs_to", "jitter", "lr_decay",
           "lr_drops", "momentum", "momentum_label", "oscillation"]

LOSS_THRESHOLD = 0.1  # momentum study: first epoch whose mean training loss is at most this
JITTER_EPOCHS = 8  # lr-decay study: the last epochs over which validation accuracy jitter counts


def _g(x: Any) -> str:
    return format(x, "g") if isinstance(x, int | float) else str(x)


# ---------------------------------------------------------------- momentum


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


def _rise(r: RunRecord) -> float:
    return oscillation(r.column("train_loss"))


def momentum(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    heads = ["momentum", f"epochs to train loss ≤ {LOSS_THRESHOLD:g} (per seed)",
             "train loss (last)", "val loss (last)", "oscillation (train)", "best val acc",
             "test acc"]
    rows = []
    for g in groups:
        hits = [epochs_to(r.column("train_loss"), LOSS_THRESHOLD) for r in g.runs]
        rows.append([momentum_label(g.runs[0].config),
                     ", ".join("never" if h is None else str(h) for h in hits),
                     ms(g.values(last("train_loss")), ".4f"),
                     ms(g.values(last("val_loss")), ".4f"), ms(g.values(_rise), ".4f"),
                     ms(g.values(best_val_accuracy)), ms(g.values(test_accuracy))])
    fig = figs.momentum(groups, momentum_label, LOSS_THRESHOLD, figures / "momentum.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(_momentum_notes(groups)),
                   [fig])


def _momentum_notes(groups: Sequence[Group]) -> list[str]:
    by = {momentum_label(g.runs[0].config): g for g in groups}
    notes = ["- Oscillation is the total rise of the per-epoch training loss, "
             "Σ max(0, L_t − L_(t−1)); 0 means it fell every epoch."]
    plain = by.get("μ=0")
    n_epochs = len(groups[0].runs[0].metrics) if groups and groups[0].runs else 0

    def hit(r: RunRecord) -> float:
        h = epochs_to(r.column("train_loss"), LOSS_THRESHOLD)
        return math.nan if h is None else float(h)

    reached = [k for k, g in by.items() if all(math.isfinite(hit(r)) for r in g.runs)]
    never = [k for k, g in by.items() if not any(math.isfinite(hit(r)) for r in g.runs)]
    if reached:
        fastest = min(reached, key=lambda k: by[k].mean(hit))
        notes.append(f"- Fastest to a training loss ≤ {LOSS_THRESHOLD:g} on every seed: "
                     f"{fastest}, after {ms(by[fastest].values(hit), '.1f')} epochs.")
    if never:
        notes.append(f"- Never reached it within {n_epochs} epochs: {', '.join(never)}.")
    if plain is not None:
        for k in ("μ=0.9", "μ=0.5"):
            if k in by:
                notes.append("- " + contrast("train loss (last)", k,
                                             by[k].values(last("train_loss")), "μ=0",
                                             plain.values(last("train_loss")), ".4f") + ".")
    shaky = max(groups, key=lambda g: g.mean(_rise))
    calm = by.get("μ=0.9")
    if calm is not None and shaky is not calm:
        notes.append("- Too much momentum overshoots: " + contrast(
            "oscillation", momentum_label(shaky.runs[0].config), shaky.values(_rise), "μ=0.9",
            calm.values(_rise), ".4f") + ".")
    if "μ=0.9 Nesterov" in by and calm is not None:
        notes.append("- Nesterov at μ = 0.9: " + contrast(
            "train loss (last)", "Nesterov", by["μ=0.9 Nesterov"].values(last("train_loss")),
            "plain", calm.values(last("train_loss")), ".4f") + ".")
    return notes


# ---------------------------------------------------------------- learning-rate decay


def decay_label(cfg: dict[str, Any]) -> str:
    name = cfg.get("scheduler.name", "none")
    if name in ("step", "multistep", "exponential"):
        return f"{name} γ={_g(cfg.get('scheduler.gamma'))}"
    return "constant" if name == "none" else name


def jitter(r: RunRecord) -> float:
    """Mean |change| of the validation accuracy between consecutive epochs, over the last
    JITTER_EPOCHS epochs: how much a run still bounces at the end."""
    acc = [v for v in r.column("val_accuracy")[-(JITTER_EPOCHS + 1):] if math.isfinite(v)]
    steps = [abs(b - a) for a, b in zip(acc, acc[1:], strict=False)]
    return sum(steps) / len(steps) if steps else math.nan


def lr_drops(r: RunRecord) -> float:
    """Epochs whose lr is below the previous epoch's (how often a schedule decayed)."""
    lrs = r.column("lr")
    return float(sum(1 for a, b in zip(lrs, lrs[1:], strict=False) if b < a * (1 - 1e-9)))


def lr_decay(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    order = ["constant", "step", "multistep", "exponential", "cosine", "plateau"]
    groups.sort(key=lambda g: order.index(str(g.runs[0].config.get("scheduler.name", "none"))
                                          .replace("none", "constant")))
    heads = ["schedule", "lr (last)", "decays", "train loss (last)", "val loss (last)",
             "val acc (last)", f"jitter (last {JITTER_EPOCHS})", "best val acc", "test acc"]
    rows = [[decay_label(g.runs[0].config), ms(g.values(last("lr")), ".2g"),
             ms(g.values(lr_drops), ".1f"), ms(g.values(last("train_loss")), ".4f"),
             ms(g.values(last("val_loss")), ".4f"), ms(g.values(last("val_accuracy"))),
             ms(g.values(jitter), ".4f"), ms(g.values(best_val_accuracy)),
             ms(g.values(test_accuracy))] for g in groups]
    fig = figs.lr_decay(groups, decay_label, figures / "lr_decay.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(_decay_notes(groups)), [fig])


def _decay_notes(groups: Sequence[Group]) -> list[str]:
    by = {decay_label(g.runs[0].config): g for g in groups}
    const = by.get("constant")
    if const is None:
        return []
    notes = [f"- Jitter: the mean change of validation accuracy from one epoch to the next "
             f"over the last {JITTER_EPOCHS} epochs; decays: epochs whose lr fell."]
    for label, g in by.items():
        if g is const:
            continue
        parts = [contrast("train loss (last)", label, g.values(last("train_loss")), "constant",
                          const.values(last("train_loss")), ".4f"),
                 contrast("val acc (last)", label, g.values(last("val_accuracy")), "constant",
                          const.values(last("val_accuracy"))),
                 contrast("jitter", label, g.values(jitter), "constant", const.values(jitter),
                          ".4f")]
        notes.append(f"- **{label}**: " + "; ".join(parts) + ".")
    best = max(by, key=lambda k: by[k].mean(best_val_accuracy))
    if best != "constant":
        notes.append("- At the best epoch instead of the last: " + contrast(
            "best val acc", best, by[best].values(best_val_accuracy), "constant",
            const.values(best_val_accuracy)) + ".")
    return notes

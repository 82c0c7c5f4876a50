"""The decision-boundary study: what overfitting and regularization look like on 2-D data.

One panel per configuration (the decision regions of its first seed's best checkpoint, drawn
by `analysis.boundary`), and a table and findings over all seeds like the other studies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.boundary import decision_regions, draw_regions
from fcnet_cli.analysis.compare import RunRecord, markdown_table
from fcnet_cli.analysis.plots import new_figure, save_figure
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.studies.findings import contrast
from fcnet_cli.studies.groups import Group, group_runs, last, test_accuracy
from fcnet_cli.studies.pages import Section, ms, reg_label

__all__ = ["boundaries", "boundary_figure", "net_label"]

COLUMNS = 4


def net_label(cfg: dict[str, Any]) -> str:
    widths = cfg.get("model.hidden", [])
    return f"{'×'.join(str(w) for w in widths) or 'linear'} {reg_label(cfg)}"


def _order(g: Group) -> tuple[int, int, int, float]:
    """Small before wide; then none, L2, L1, dropout; weaker before stronger."""
    cfg = g.runs[0].config
    width = sum(cfg.get("model.hidden", []))
    kind = ("none", "l2", "l1", "elastic_net").index(str(cfg.get("regularization.type",
                                                                 "none")))
    drop = 1 if cfg.get("model.dropout") else 0
    return (width, drop, kind, float(cfg.get("regularization.strength", 0.0)))


def boundaries(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = sorted(group_runs(runs), key=_order)
    heads = ["network, regularization", "train acc (last)", "val acc (last)", "gap (last)",
             "val loss (last)", "test acc"]
    rows = [[net_label(g.runs[0].config), ms(g.values(last("train_accuracy"))),
             ms(g.values(last("val_accuracy"))), ms(g.values(last("gap_accuracy"))),
             ms(g.values(last("val_loss"))), ms(g.values(test_accuracy))] for g in groups]
    fig = boundary_figure(groups, figures / "boundaries.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(_notes(groups)), [fig])


def _notes(groups: Sequence[Group]) -> list[str]:
    by = {net_label(g.runs[0].config): g for g in groups}
    plain = [g for g in groups if reg_label(g.runs[0].config) == "none"]
    if not plain:
        return []
    wide = max(plain, key=lambda g: sum(g.runs[0].config.get("model.hidden", [])))
    wide_label = net_label(wide.runs[0].config)
    gap, val = last("gap_accuracy"), last("val_accuracy")
    notes = []
    for label, g in by.items():
        if g is wide:
            continue
        notes.append(f"- **{label}** against {wide_label}: "
                     + contrast("gap", label, g.values(gap), "it", wide.values(gap)) + "; "
                     + contrast("val acc (last)", label, g.values(val), "it", wide.values(val))
                     + ".")
    return notes


def boundary_figure(groups: Sequence[Group], out: Path) -> Path:
    """Decision regions of each configuration's first seed at the last epoch (what training
    to the end produced, like the table's "last" columns), with train/val points."""
    rows = math.ceil(len(groups) / COLUMNS)
    fig, axes = new_figure(rows, COLUMNS, 4.2 * COLUMNS, 4.0 * rows)
    for ax, g in zip(axes, groups, strict=False):
        run = min(g.runs, key=lambda r: r.config.get("training.seed", 0))
        regions = decision_regions(run.path, resolution=150, which=RunDir.LAST)
        title = (f"{net_label(run.config)}\nval acc {ms(g.values(last('val_accuracy')))} "
                 f"(seed {run.config.get('training.seed')} shown)")
        draw_regions(ax, regions, title)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    fig.suptitle("decision regions at the last epoch: training points filled (a fifth of "
                 "their labels flipped), validation hollow; black line p = 0.5")
    return save_figure(fig, out)

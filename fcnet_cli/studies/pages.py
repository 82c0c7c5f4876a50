"""The regularization studies (overfitting, L1 vs L2): tables and findings from their runs.

Each `analyse` function takes the study's runs (`RunRecord`, seeds included) and a figure
folder, draws its figure (`figures`) and returns a Markdown section. Cells are mean ± std over
the seeds of one configuration; findings are sentences filled in from those values and
tested with Welch's t-test (`findings.contrast`), never written by hand. `dynamics.py` holds
the momentum and learning-rate studies, `boundaries.py` the decision-boundary study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.compare import RunRecord, markdown_table, weight_totals
from fcnet_cli.analysis.stats import summarize
from fcnet_cli.studies import figures as figs
from fcnet_cli.studies.findings import contrast, significant
from fcnet_cli.studies.groups import (
    Group,
    best_val_accuracy,
    group_runs,
    last,
    test_accuracy,
)

__all__ = ["Section", "l1_vs_l2", "layer_names", "ms", "overfitting", "reg_label"]


@dataclass
class Section:
    markdown: str
    figures: list[Path] = field(default_factory=list)


def ms(values: Sequence[float], spec: str = ".3f") -> str:
    """'mean ± std' over seeds (just the mean for one seed); '-' when nothing is finite."""
    return summarize(values).text(spec)


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
    if drop and kind == "none":
        return f"dropout {_g(drop)}"
    return f"{text} + dropout {_g(drop)}" if drop else text


def _gap(r: RunRecord) -> float:
    return last("gap_accuracy")(r)


def overfitting(runs: Sequence[RunRecord], figures: Path) -> Section:
    groups = group_runs(runs)
    order = {"none": 0, "dropout": 1, "l2": 2, "l1": 3, "elastic_net": 4}
    groups.sort(key=lambda g: (order.get(str(g.runs[0].config.get("regularization.type")), 5)
                               + (0.5 if g.runs[0].config.get("model.dropout") else 0),
                               g.runs[0].config.get("regularization.strength", 0)))
    heads = ["regularization", "train acc (last)", "val acc (last)", "gap (last)",
             "val loss (last)", "best val acc", "test acc"]
    rows = [[reg_label(g.runs[0].config), ms(g.values(last("train_accuracy"))),
             ms(g.values(last("val_accuracy"))), ms(g.values(_gap)),
             ms(g.values(last("val_loss"))), ms(g.values(best_val_accuracy)),
             ms(g.values(test_accuracy))] for g in groups]
    none = next((g for g in groups if reg_label(g.runs[0].config) == "none"), None)
    notes = [f"- Training split: {_n_train(runs)}."]
    if none is not None:
        notes += _overfitting_notes(groups, none)
    fig = figs.overfitting(groups, reg_label, figures / "overfitting.png")
    return Section(markdown_table(heads, rows) + "\n" + "\n".join(notes), [fig])


def _overfitting_notes(groups: Sequence[Group], none: Group) -> list[str]:
    """One bullet per regularized configuration: its gap and val accuracy against none's.
    A configuration underfits (too strong) when both its training and its validation accuracy
    are significantly *below* no regularization's."""
    val, train = last("val_accuracy"), last("train_accuracy")
    notes = [f"- Without regularization the network memorizes its training split: training "
             f"accuracy {ms(none.values(train))}, validation accuracy {ms(none.values(val))}, "
             f"gap {ms(none.values(_gap))} "
             f"(95 % interval {summarize(none.values(_gap)).interval('.3f')})."]
    for g in groups:
        if g is none:
            continue
        label = reg_label(g.runs[0].config)
        text = (f"- **{label}**: " + contrast("gap", label, g.values(_gap), "none",
                                              none.values(_gap))
                + "; " + contrast("val acc (last)", label, g.values(val), "none",
                                  none.values(val)))
        lower = [fn for fn in (train, val) if g.mean(fn) < none.mean(fn)
                 and significant(g.values(fn), none.values(fn))]
        if len(lower) == 2:
            text += (f". Too strong: it underfits — training accuracy {ms(g.values(train))} "
                     "and validation accuracy both below no regularization's")
        notes.append(text + ".")
    tests = [g for g in groups if g is not none]
    top = max(tests, key=lambda g: g.mean(test_accuracy), default=None)
    if top is not None:
        notes.append("- Test accuracy of the *best* checkpoint (early stopping by validation "
                     "accuracy): " + contrast("test acc", reg_label(top.runs[0].config),
                                              top.values(test_accuracy), "none",
                                              none.values(test_accuracy)) + ".")
    return notes


def _n_train(runs: Sequence[RunRecord]) -> str:
    if not runs:
        return "?"
    cfg = runs[0].config
    frac = cfg.get("data.val_fraction", 0.0) + cfg.get("data.test_fraction", 0.0)
    noise = cfg.get("data.label_noise", 0.0)
    text = f"about {round((1 - frac) * 100)} % of the data set"
    return text + (f", {round(noise * 100)} % of its labels replaced by a wrong class"
                   if noise else "")


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
    none = total.get("none")
    notes = []
    if none is not None:
        def sparse(r: RunRecord) -> float:
            return totals(r)[0]

        def norm(r: RunRecord) -> float:
            return totals(r)[1]

        for kind, fn, what, spec in (("L1", sparse, "fraction of |w| < 1e-3", ".3f"),
                                     ("L2", norm, "total ‖W‖₂", ".2f")):
            pick = [k for k in total if k.startswith(kind)]
            if not pick:
                continue
            top = max(pick, key=lambda k: abs(total[k].mean(fn) - none.mean(fn)))
            notes.append(f"- {kind}: " + contrast(what, top, total[top].values(fn), "none",
                                                  none.values(fn), spec) + ".")
        other = max((k for k in total if k.startswith("L2")),
                    key=lambda k: total[k].mean(sparse), default=None)
        if other is not None:
            notes.append("- L2 does not make weights exactly small: " + contrast(
                "fraction of |w| < 1e-3", other, total[other].values(sparse), "none",
                none.values(sparse)) + ".")
        val = last("val_accuracy")
        best = max(total, key=lambda k: total[k].mean(val))
        if best != "none":
            notes.append("- Accuracy is not what this study is about: " + contrast(
                "val acc (last)", best, total[best].values(val), "none", none.values(val))
                + ".")
    fig = figs.l1_vs_l2(groups, reg_label, names, figures / "l1_vs_l2.png")
    text = (markdown_table(heads2, rows2) + "\n" + "\n".join(notes) + "\n\nPer layer:\n\n"
            + markdown_table(heads, rows))
    return Section(text, [fig])

"""`fcnet validate --data`: open the data as `train` would, and summarize it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcnet_cli.config import Experiment
    from fcnet_cli.engine.data.load import DataSplits
    from fcnet_cli.engine.train.defaults import DataFacts

__all__ = ["data_summary"]

SHOWN = 12  # most columns or classes named in one line


def data_summary(exp: Experiment) -> tuple[list[tuple[str, str]], list[str], DataFacts]:
    """Load and split `exp`'s data exactly as training does (the same errors), and return
    (label, text) lines describing it, the data notices training would print and the facts
    the default rule reads (engine/train/defaults.py).

    Raises:
        DataError / UsageError: what training would refuse.
    """
    from fcnet_cli.engine.data.load import load_data
    from fcnet_cli.engine.ranking import check_binary_monitors, watched_metrics
    from fcnet_cli.engine.train.defaults import data_facts

    data = load_data(exp.data, task=exp.task)
    check_binary_monitors(watched_metrics([exp]), data.n_classes, data.task)
    n = [len(data.y_train), len(data.y_val), len(data.y_test)]
    pairs = [("data", exp.data.path or exp.data.dataset),
             ("rows", f"{sum(n)}: {n[0]} train, {n[1]} val, {n[2]} test"),
             *_target_pairs(data), *_column_pairs(data)]
    if exp.data.drop:
        pairs.append(("dropped", _names(list(exp.data.drop))))
    return pairs, list(data.notices), data_facts(data)


def _names(names: list[str]) -> str:
    more = f", … ({len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _target_pairs(data: DataSplits) -> list[tuple[str, str]]:
    target = data.preprocessing.target
    pairs = [("target", _names(target.columns))] if target.columns else []
    if data.task == "regression":
        return pairs + [("task", f"regression, {len(target.columns)} target(s)")]
    counts = data.y_train.bincount(minlength=data.n_classes).tolist()
    top = max(range(len(counts)), key=counts.__getitem__)
    share = counts[top] / max(sum(counts), 1)
    return pairs + [("task", f"classification, {data.n_classes} classes: "
                             f"{_names(data.classes)}"),
                    ("largest class", f"'{data.classes[top]}', {share:.1%} of the train rows")]


def _column_pairs(data: DataSplits) -> list[tuple[str, str]]:
    cols = data.preprocessing.columns
    numeric = [c.name for c in cols if c.kind == "numeric"]
    categorical = [f"{c.name} ({len(c.categories)})" for c in cols if c.kind == "categorical"]
    filled = [c.name for c in cols if c.fill is not None]
    pairs = [("numeric", f"{len(numeric)}: {_names(numeric)}" if numeric else "none")]
    if categorical:
        pairs.append(("categorical", f"{len(categorical)} (categories): {_names(categorical)}"))
    if filled:
        pairs.append(("filled", f"{len(filled)} column(s) with missing cells: "
                                f"{_names(filled)}"))
    pairs.append(("model inputs", str(data.preprocessing.in_features)))
    return pairs

"""Estimator parameters -> a validated `Experiment`, through the schema the CLI validates with.

A parameter left at None is not written at all, so the experiment gets exactly what a minimal
YAML file gets for it. `config=` (a YAML path or a mapping) is read first; the parameters set
override it, like `--set` items override a file. A bad value raises `ParameterError` (a
`ValueError`) whose lines are the CLI's, each placed at the parameter that wrote it:

    lr (optimizer.lr): Input should be greater than 0 (got -1)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fcnet_cli.config import ConfigError, Experiment, Loc, Source, load_source, validate
from fcnet_cli.config.source import source_from_mapping
from fcnet_cli.engine.data.load import IN_MEMORY

__all__ = ["COMMON", "ParameterError", "build_experiment", "plain",
           "regularization_of"]

# estimator parameter -> the experiment field it sets (both estimators)
COMMON: dict[str, str] = {
    "hidden": "model.hidden",
    "activation": "model.activation",
    "dropout": "model.dropout",
    "batch_norm": "model.batch_norm",
    "num_embeddings": "model.num_embeddings",
    "optimizer": "optimizer.name",
    "lr": "optimizer.lr",
    "momentum": "optimizer.momentum",
    "nesterov": "optimizer.nesterov",
    "weight_decay": "optimizer.weight_decay",
    "scheduler": "scheduler.name",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "seed": "training.seed",
    "early_stopping": "training.early_stopping.patience",
    "device": "training.device",
    "threads": "training.threads",
    "normalize": "data.normalize",
    "missing": "data.missing",
    "missing_indicator": "data.missing_indicator",
    "categorical": "data.categorical",
    "max_categories": "data.max_categories",
    "val_fraction": "data.val_fraction",
    "test_fraction": "data.test_fraction",
    "split_seed": "data.split_seed",
}
CLASSIFIER = {**COMMON, "label_smoothing": "loss.label_smoothing",
              "class_weights": "loss.class_weights"}
REGRESSOR = {**COMMON, "loss": "loss.name"}


class ParameterError(ConfigError, ValueError):
    """Bad estimator parameters or `config=`: one line per problem, as the CLI prints them."""


def plain(value: Any) -> Any:
    """numpy scalars and arrays, and tuples, as the plain Python values the schema takes."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, list)):
        return [plain(v) for v in value]
    return value


def regularization_of(l1: Any, l2: Any) -> dict[str, Any]:
    """`l1`·Σ|w| + `l2`·Σw² as the schema's regularization section (type, strength, l1_ratio).

    Both set: elastic_net with strength l1 + l2 and l1_ratio l1 / (l1 + l2), the same penalty.
    """
    if l1 is not None and l2 is not None:
        bad = [v for v in (l1, l2) if not _numbers(v) or v < 0]
        if bad:  # the schema names the bad value itself
            return {"type": "elastic_net", "strength": bad[0]}
        total = l1 + l2
        return {"type": "elastic_net", "strength": total,
                "l1_ratio": l1 / total if total > 0 else 0.5}
    if l1 is not None:
        return {"type": "l1", "strength": l1}
    if l2 is not None:
        return {"type": "l2", "strength": l2}
    return {}


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _config_source(config: Any, origin: str) -> Source:
    """`config=`: None, a YAML file (placed at file:line) or a mapping (placed at its keys)."""
    if config is None:
        return Source({}, {}, origin)
    if isinstance(config, (str, Path)):
        return load_source(Path(config))
    if not isinstance(config, Mapping):
        raise ParameterError([f"config: expected a YAML file path or a mapping of sections "
                              f"(got {type(config).__name__})"])
    source = source_from_mapping(copy.deepcopy(dict(config)), {}, "config", Path.cwd())
    for key in _paths(source.raw):
        source.where.setdefault(key, Loc(f"config {key}"))
    return source


def _paths(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted path of a nested mapping, sections included."""
    out = []
    for key, value in tree.items():
        out.append(f"{prefix}{key}")
        if isinstance(value, Mapping):
            out += _paths(value, f"{prefix}{key}.")
    return out


def _put(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = copy.deepcopy(value)


def build_experiment(owner: str, fields: Mapping[str, str], params: Mapping[str, Any], *,
                     config: Any, task: str, target: list[str],
                     output_dir: str | Path | None
                     ) -> Experiment:
    """The experiment an estimator trains: `config`, then the parameters set, then the data
    section of an in-memory table (`target`: its target column(s)). `model.ensemble` is 1
    unless `config` sets it: the default rule's ensemble is `fcnet train`'s.

    Raises:
        ParameterError: every problem, one line each, placed at the parameter or config key.
    """
    try:
        source = _config_source(config, owner)
    except ConfigError as e:
        raise ParameterError(e.problems) from None
    raw, where = copy.deepcopy(source.raw), dict(source.where)
    sets = {fields[name]: (name, plain(value)) for name, value in params.items()
            if name in fields and value is not None}
    written = regularization_of(plain(params.get("l1")), plain(params.get("l2")))
    named = " and ".join(n for n in ("l1", "l2") if params.get(n) is not None)
    sets.update({f"regularization.{k}": (named, v) for k, v in written.items()})
    for dotted, (name, value) in sets.items():
        _put(raw, dotted, value)
        for old in [k for k in where if k == dotted or k.startswith(dotted + ".")]:
            del where[old]
        where[dotted] = Loc(f"{name} ({dotted})")
    _put(raw, "task", task)
    where["task"] = Loc(f"{owner} (task)")
    model = raw.get("model")
    if not (isinstance(model, dict) and "ensemble" in model):  # one model unless `config` says
        _put(raw, "model.ensemble", 1)
        where["model.ensemble"] = Loc(f"{owner} (one model)")
    data: dict[str, Any] = raw["data"] if isinstance(raw.get("data"), dict) else {}
    data.update(dataset="csv", path=IN_MEMORY, target=target[0] if task == "classification"
                or len(target) == 1 else target)
    raw["data"] = data
    if output_dir is not None:
        _put(raw, "output.dir", str(output_dir))
    output = raw.get("output")
    if not (isinstance(output, dict) and output.get("name")):
        _put(raw, "output.name", owner)
    try:
        exp = validate(Source(raw, where, owner, None, owner))
    except ConfigError as e:
        raise ParameterError(e.problems) from None
    if exp.training.seeds != 1:
        raise ParameterError([f"{where.get('training.seeds', Loc(owner))}: training.seeds: an "
                              f"estimator trains one seed (got {exp.training.seeds}); clone "
                              f"it per seed instead"])
    return exp

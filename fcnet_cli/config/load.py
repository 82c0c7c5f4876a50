"""From a file (or a mapping) to a validated `Experiment`: read, extend, override, validate,
resolve; and the views of a validated experiment the rest of fcnet needs.

    exp = load_experiment("experiments/l2.yaml", ["optimizer.lr=0.1"])
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fcnet_cli.config.problems import Loc, Problem, problems_from
from fcnet_cli.config.schema import Experiment
from fcnet_cli.config.source import (
    FILE_RELATIVE,
    Source,
    read_source,
    source_from_mapping,
    with_overrides,
)
from fcnet_cli.errors import ConfigError
from fcnet_cli.yamlio import dump_yaml, read_config_file

__all__ = [
    "check",
    "dump_experiment",
    "explain",
    "flatten",
    "layout_key",
    "load_experiment",
    "load_source",
    "validate",
    "validate_experiment",
    "with_values",
]


def check(source: Source) -> tuple[Experiment | None, list[Problem]]:
    """Validate a source: the resolved experiment, or every problem (placed where written)."""
    try:
        exp = Experiment.model_validate(source.raw)
    except ValidationError as e:
        return None, problems_from(e, Experiment, source.where, source.default)
    return _resolve(exp, source), []


def validate(source: Source) -> Experiment:
    """Validate a source; raise ConfigError listing every problem (one line each)."""
    exp, problems = check(source)
    if exp is None:
        raise ConfigError([str(p) for p in problems])
    return exp


def _resolve(exp: Experiment, source: Source) -> Experiment:
    """Relative data paths against the file that wrote them; the default run name."""
    updates: dict[str, Any] = {}
    for path in FILE_RELATIVE:
        section, key = path.split(".")
        value = getattr(getattr(exp, section), key)
        folder = source.folder_of(path)
        if value and folder is not None:
            # absolute, but a symbolic link stays itself: messages name what the user wrote
            updates[key] = os.path.abspath(folder / value)
    new = exp.model_copy(update={"data": exp.data.model_copy(update=updates)}) if updates else exp
    if new.output.name is None and source.default_name:
        out = new.output.model_copy(update={"name": source.default_name})
        new = new.model_copy(update={"output": out})
    return new


def validate_experiment(raw: Any, origin: str = "<config>", base_dir: Path | None = None,
                        default_name: str | None = None) -> Experiment:
    """Validate a raw mapping (an `extends:` in it is relative to `base_dir`)."""
    source = source_from_mapping(raw, {}, origin, base_dir)
    source.base_dir, source.default_name = base_dir, default_name
    return validate(source)


def load_source(path: str | Path, overrides: Iterable[str] = ()) -> Source:
    """An experiment file with the files it extends and `--set` items, not yet validated."""
    _not_a_sweep(Path(path))
    return with_overrides(read_source(Path(path)), overrides)


SWEEP_MARKERS = ("base", "parameters")  # keys only a sweep file has


def _not_a_sweep(path: Path) -> None:
    """One line for a sweep file given where an experiment is expected (not one per key)."""
    try:
        raw, _ = read_config_file(path)
    except ConfigError:
        return  # read_source reports it
    if not isinstance(raw, dict):
        return
    sections = set(Experiment.model_fields) | {"extends"}
    if any(k in raw for k in SWEEP_MARKERS) and not any(k in raw for k in sections):
        raise ConfigError([f"{path}: this is a sweep file (it has "
                           f"{' and '.join(k for k in SWEEP_MARKERS if k in raw)}), not an "
                           f"experiment: run `fcnet sweep {path}`"])


def load_experiment(path: str | Path, overrides: Iterable[str] = ()) -> Experiment:
    """Read, extend, override and validate an experiment file. Raises ConfigError."""
    return validate(load_source(path, overrides))


def with_values(exp: Experiment, values: Mapping[str, Any], where: Mapping[str, Loc],
                origin: str) -> tuple[Experiment | None, list[Problem]]:
    """A validated experiment with dotted `values` set (a sweep point), validated again.

    A fault is placed at `where[key]` for a set key (the sweep file's line), else at `origin`.
    """
    tree = exp.model_dump(mode="python")
    for key, value in values.items():
        *parents, last = key.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[last] = copy.deepcopy(value)
    return check(Source(tree, dict(where), origin, None, exp.output.name))


def dump_experiment(exp: Experiment) -> str:
    """The resolved config as YAML (what `config.yaml` in a run directory holds); the fields
    the default rule resolved from the data are listed first, as comments, with reasons."""
    text = dump_yaml(exp.model_dump(mode="json"))  # no anchors: load_yaml refuses them
    if not exp.auto:
        return text
    head = [AUTO_HEADER] + [f"#   {k}: {v}" for k, v in sorted(exp.auto.items())]
    return "\n".join(head) + "\n" + text


AUTO_HEADER = ("# left out of the experiment, resolved from the data by the default rule "
               "(set below,\n# so training this file reproduces the run):")


def explain(exp: Experiment, source: Source) -> dict[str, str]:
    """Dotted field -> where its value came from: `file:line`, `--set KEY` or `default`."""
    return {key: str(source.where[key]) if key in source.where else "default"
            for key in flatten(exp.model_dump(mode="json"))}


def layout_key(exp: Experiment) -> str:
    """Everything members of one population must share (DESIGN.md: the layout)."""
    m, t = exp.model, exp.training
    key: dict[str, Any] = {"data": exp.data.model_dump(mode="json"), "task": exp.resolved_task,
           "loss": exp.loss_name, "hidden": m.hidden,
           "activation": m.activation, "batch_norm": m.batch_norm,
           "batch_size": t.batch_size, "epochs": t.epochs, "device": t.device,
           "engine": t.engine, "optimizer": exp.optimizer.name,
           "include_bias": exp.regularization.include_bias}
    if t.precision != "fp32":  # fp32 layouts keep the key they always had
        key["precision"] = t.precision
    if m.num_embeddings != "none":  # the inputs the population shares (engine.data.embeddings)
        key["num_embeddings"] = [m.num_embeddings, m.num_bins, m.num_frequencies,
                                 m.periodic_sigma]
    return json.dumps(key, sort_keys=True)  # compared in memory only, never stored


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

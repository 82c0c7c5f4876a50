"""`fcnet sweep --set` items against a sweep file, before it is validated.

    --set seeds=1                          a key of the sweep file
    --set base.training.epochs=5           a field of the base experiment
    --set parameters.optimizer.lr=[0.01,0.1]   one parameter's values

A base field that a one-value parameter pins (`training.epochs: [15]`) takes the command
line's value, and a note says so: the override wins. A base field that the sweep varies is an
error, because every configuration would replace the value: the message shows the
`--set parameters.KEY=...` form. Either way nothing is silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnet_cli.config import ConfigError, Experiment, Loc, parse_override

__all__ = ["SweepOverrides", "not_an_experiment", "split_overrides"]


@dataclass
class SweepOverrides:
    raw: dict[str, Any]  # the sweep mapping with `parameters.*` items applied
    own: list[str] = field(default_factory=list)  # items for the sweep's own keys
    base: list[str] = field(default_factory=list)  # items for the base (prefix removed)
    params: list[str] = field(default_factory=list)  # parameter keys set on the command line
    notes: list[str] = field(default_factory=list)


def not_an_experiment(raw: dict[str, Any], path: Path) -> None:
    """One line for an experiment file given to `fcnet sweep` (not `base: required` and one
    `unknown key` per section)."""
    if "base" not in raw and any(k in Experiment.model_fields for k in raw):
        raise ConfigError([f"{path}: this is an experiment file (sections, no `base:`), not a "
                           f"sweep: run `fcnet train {path}`, or name it as `base:` in a "
                           f"sweep file"])


def split_overrides(raw: dict[str, Any], items: Sequence[str],
                    lines: dict[str, int], origin: str) -> SweepOverrides:
    """Sort `--set` items and settle base overrides against the parameters (module doc)."""
    params = dict(raw["parameters"]) if isinstance(raw.get("parameters"), dict) else {}
    out = SweepOverrides(raw)
    problems: list[str] = []
    for item in items:
        if item.startswith("parameters") and not item.startswith("parameters."):
            problems.append(f"--set {item}: set one parameter at a time, e.g. --set "
                            f"parameters.optimizer.lr=[0.01,0.1]")
        elif item.startswith("parameters."):
            key, value = parse_override(item.removeprefix("parameters."))
            params[key] = value
            out.params.append(key)
        elif item.startswith("base."):
            out.base.append(item.removeprefix("base."))
            key, _ = parse_override(item.removeprefix("base."))
            where = Loc(origin, lines.get(f"parameters.{key}"))
            if key in out.params:
                continue
            if isinstance(params.get(key), list) and len(params[key]) == 1:
                out.notes.append(f"--set {item} replaces the pinned parameter {key}: "
                                 f"{json.dumps(params.pop(key))} ({where})")
            elif key in params:
                problems.append(f"--set {item}: {key} is swept by the sweep file ({where}), "
                                f"so a base value would never be used; to sweep other values: "
                                f"--set parameters.{key}=[...]")
        else:
            out.own.append(item)
    if problems:
        raise ConfigError(problems)
    if params or "parameters" in raw:
        out.raw = {**raw, "parameters": params}
    return out

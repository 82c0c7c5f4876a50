"""The sweep file's schema and the validated `Sweep` it becomes (`load.py` reads and checks
the file). No torch, no optuna.

    name: reg-vs-momentum
    base: ../digits.yaml          # relative to this file, or an inline experiment mapping
    method: grid                  # grid | random | tpe
    seeds: 3                      # every configuration is trained with this many seeds
    parameters:
      regularization.type: [none, l1, l2]
      regularization.strength: {log_uniform: [1.0e-6, 1.0e-2], num: 3}

The base is read like an experiment file (`extends:` included). Every configuration is the
validated base experiment with the point's values set (a dict of dotted keys, never text) and
validated again; a fault names the sweep file's line of the parameter that caused it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fcnet_cli.config import (
    MAX_SEEDS,
    ConfigError,
    Experiment,
    Loc,
    Monitor,
    Problem,
    Source,
    flatten,
    with_values,
)
from fcnet_cli.metrics import direction
from fcnet_cli.sweep import space

__all__ = ["Sweep", "SweepSpec", "known_keys", "point_text", "schema_defaults"]

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
MAX_TRIALS = space.MAX_GRID  # the same bound as a grid's size
SET_BY_SWEEP = ("training.seed", "output.name")  # per member, never swept


class SweepSpec(BaseModel):
    """The keys of a sweep file (everything but `base` and `parameters` has a default)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str | None = Field(None, pattern=f"^{_NAME}$",
                             description="sweep name and folder under output.dir "
                                         "(default: the file's stem)")
    base: str | dict[str, Any] = Field(description="base experiment: a path relative to the "
                                                   "sweep file, or an inline mapping")
    method: Literal["grid", "random", "tpe"] = Field("grid", description="how points are chosen")
    trials: int | None = Field(None, gt=0, le=MAX_TRIALS,
                               description="random/tpe: configurations to run")
    seeds: int = Field(1, gt=0, le=MAX_SEEDS,
                       description="members per configuration (training.seed + i)")
    metric: Monitor = Field(
        "val_accuracy", description="mean over seeds of this metric at each run's best epoch "
                                    "(val_rmse/val_mae/val_r2 for task: regression)")
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="default: minimize val_loss, val_rmse and val_mae, maximize the "
                          "others")
    pruner: Literal["none", "median", "hyperband"] = Field(
        "none", description="stop poor trials early from per-epoch validation values")
    max_population: int = Field(MAX_SEEDS, gt=0, description="most members trained together")
    sampler_seed: int = Field(0, ge=0, description="seed of the random/tpe sampler")
    heartbeat_interval: int = Field(20, gt=0, description="--storage URL only: seconds "
                                                          "between a worker's heartbeats")
    grace_period: int = Field(60, gt=0, description="--storage URL only: seconds without a "
                                                    "heartbeat before a trial is failed and "
                                                    "retried")
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       description="dotted experiment key -> values or range")


@dataclass
class Sweep:
    """A validated sweep: spec, base experiment, parameters and (grid) every point."""

    spec: SweepSpec
    name: str
    params: list[space.Param]
    base: Source  # the base mapping with `--set base.*` applied, and where each value is
    base_exp: Experiment
    origin: str  # the sweep file
    where: dict[str, Loc] = field(default_factory=dict)  # the sweep file's own keys
    points: list[space.Point] = field(default_factory=list)  # grid only, grouped by layout
    layouts: dict[str, str] = field(default_factory=dict)  # grid: point key -> layout_key
    notes: list[str] = field(default_factory=list)

    @property
    def direction(self) -> str:
        return self.spec.direction or direction(self.spec.metric)

    @property
    def sweep_dir(self) -> Path:
        return Path(self.base_exp.output.dir) / self.name

    @property
    def total(self) -> int:
        """Configurations the sweep runs: the grid's size or `trials`."""
        return len(self.points) if self.spec.method == "grid" else int(self.spec.trials or 0)

    @property
    def base_values(self) -> dict[str, Any]:
        return flatten(self.base_exp.model_dump(mode="json"))

    def param_loc(self, key: str) -> Loc:
        """The sweep file's line of `parameters.<key>`."""
        return self.where.get(f"parameters.{key}", self.where.get("parameters",
                                                                  Loc(self.origin, 1)))

    def check(self, values: Mapping[str, Any]) -> tuple[Experiment | None, list[Problem]]:
        """The base with dotted `values` set, validated; a fault of a swept key is placed at
        its line in the sweep file and named `parameters.<key>`."""
        swept = {k: self.param_loc(k) for k in values if k not in SET_BY_SWEEP}

        def is_swept(path: str) -> bool:
            return any(path == k or path.startswith(k + ".") for k in swept)

        where = {k: v for k, v in self.base.where.items() if not is_swept(k)}
        exp, problems = with_values(self.base_exp, values, {**where, **swept}, self.origin)
        return exp, [Problem(p.where, f"parameters.{p.path}", p.message) if is_swept(p.path)
                     else p for p in problems]

    def experiment(self, point: space.Point, seed_index: int = 0,
                   name: str | None = None) -> Experiment:
        """The experiment a point stands for (raises ConfigError when it does not validate)."""
        values = {**point.values(), "training.seed": self.base_exp.training.seed + seed_index}
        if name is not None:
            values["output.name"] = name
        exp, problems = self.check(values)
        if exp is None:
            raise ConfigError([str(p) for p in problems])
        return exp

    def identity(self) -> dict[str, Any]:
        """What must not change while a sweep has trials (checked on resume)."""
        s = self.spec
        # the base as written (not its resolved dump), so a new fcnet field with a default
        # does not block resuming a sweep started by an older fcnet
        # training.threads is how fast this machine runs it, not what the trials compute
        base = dict(self.base.raw)
        if isinstance(base.get("training"), dict):
            base["training"] = {k: v for k, v in base["training"].items() if k != "threads"}
        return {"method": s.method, "seeds": s.seeds, "metric": s.metric,
                "direction": self.direction, "parameters": s.parameters, "base": base}

    def resolved(self) -> dict[str, Any]:
        """The content of sweep.yaml: the spec with the base experiment written out."""
        out = self.spec.model_dump(mode="json")
        out.update(name=self.name, direction=self.direction,
                   base=self.base_exp.model_dump(mode="json"))
        return out


def schema_defaults() -> dict[str, Any]:
    """Every experiment field's default, flat (dotted keys)."""
    return flatten(Experiment().model_dump(mode="json"))


def point_text(values: Mapping[str, Any]) -> str:
    """`optimizer.lr=0.1, model.hidden=[8, 4]` (how a point is named in messages)."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()) or "the base"


def known_keys() -> Sequence[str]:
    return list(schema_defaults())

"""The sweep file: schema, loading and up-front validation. No torch, no optuna.

    name: reg-vs-momentum
    base: ../digits.yaml          # relative to this file, or an inline experiment mapping
    method: grid                  # grid | random | tpe
    seeds: 3                      # every configuration is trained with this many seeds
    parameters:
      regularization.type: [none, l1, l2]
      regularization.strength: {log_uniform: [1.0e-6, 1.0e-2], num: 3}

Every configuration is the base experiment with the point's values applied as dotted
overrides (`config.apply_overrides`) and validated by the experiment schema. `load_sweep`
raises one `ConfigError` listing every problem before any trial exists.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fcnet_cli.config import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    ConfigError,
    Experiment,
    Monitor,
    apply_overrides,
    describe_schema,
    flatten,
    layout_key,
    metric_mode,
    read_config_file,
    validate_experiment,
)
from fcnet_cli.sweep import space

__all__ = ["Sweep", "SweepSpec", "load_sweep", "schema_defaults", "sweep_from_mapping"]

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"


class SweepSpec(BaseModel):
    """The keys of a sweep file (everything but `base` and `parameters` has a default)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str | None = Field(None, pattern=f"^{_NAME}$",
                             description="sweep name and folder under output.dir "
                                         "(default: the file's stem)")
    base: str | dict[str, Any] = Field(description="base experiment: a path relative to the "
                                                   "sweep file, or an inline mapping")
    method: Literal["grid", "random", "tpe"] = Field("grid", description="how points are chosen")
    trials: int | None = Field(None, gt=0, description="random/tpe: configurations to run")
    seeds: int = Field(1, gt=0, description="members per configuration (training.seed + i)")
    metric: Monitor = Field(
        "val_accuracy", description="mean over seeds of this metric at each run's best epoch "
                                    "(val_rmse/val_mae/val_r2 for task: regression)")
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="default: minimize val_loss, val_rmse and val_mae, maximize the "
                          "others")
    pruner: Literal["none", "median", "hyperband"] = Field(
        "none", description="stop poor trials early from per-epoch validation values")
    max_population: int = Field(256, gt=0, description="most members trained together")
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
    base_raw: dict[str, Any]  # the base mapping with `--set base.*` applied
    base_lines: dict[str, int]
    base_origin: str
    base_dir: Path
    base_exp: Experiment
    origin: str  # the sweep file
    points: list[space.Point] = field(default_factory=list)  # grid only, grouped by layout
    layouts: dict[str, str] = field(default_factory=dict)  # grid: point key -> layout_key
    notes: list[str] = field(default_factory=list)

    @property
    def direction(self) -> str:
        return self.spec.direction or ("minimize" if metric_mode(self.spec.metric) == "min"
                                       else "maximize")

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

    def experiment(self, point: space.Point, seed_index: int = 0,
                   name: str | None = None) -> Experiment:
        """The experiment a point stands for (raises ConfigError when it does not validate)."""
        items = point.overrides()
        items.append(f"training.seed={self.base_exp.training.seed + seed_index}")
        if name is not None:
            items.append(f"output.name={name}")
        merged, touched = apply_overrides(self.base_raw, items)
        return validate_experiment(merged, self.base_lines, self.base_origin, self.base_dir,
                                   self.name, touched)

    def identity(self) -> dict[str, Any]:
        """What must not change while a sweep has trials (checked on resume)."""
        s = self.spec
        # the base as written (not its resolved dump), so a new fcnet field with a default
        # does not block resuming a sweep started by an older fcnet
        return {"method": s.method, "seeds": s.seeds, "metric": s.metric,
                "direction": self.direction, "parameters": s.parameters, "base": self.base_raw}

    def resolved(self) -> dict[str, Any]:
        """The content of sweep.yaml: the spec with the base experiment written out."""
        out = self.spec.model_dump(mode="json")
        out.update(name=self.name, direction=self.direction,
                   base=self.base_exp.model_dump(mode="json"))
        return out


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read a sweep file, apply `--set` items (`base.key=value` for the base experiment,
    `key=value` for the sweep's own keys) and validate everything. Raises ConfigError."""
    p = Path(path)
    raw, lines = read_config_file(p)
    if not isinstance(raw, dict):
        raise ConfigError([f"{p}:1: a sweep file is a mapping (name, base, method, "
                           f"parameters, ...)"])
    own = [o for o in overrides if not o.startswith("base.")]
    if any(o.startswith("parameters") for o in own):
        raise ConfigError(["--set parameters...: parameters cannot be set from the command "
                           "line; edit the sweep file"])
    merged, touched = apply_overrides(raw, own)
    base_items = [o.removeprefix("base.") for o in overrides if o.startswith("base.")]
    return sweep_from_mapping(merged, lines, str(p), p.parent, p.stem, touched, base_items)


def sweep_from_mapping(raw: dict[str, Any], lines: dict[str, int] | None = None,
                       origin: str = "<sweep>", base_dir: Path = Path("."),
                       default_name: str = "sweep", touched: set[str] | None = None,
                       base_overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Validate a sweep mapping (see `load_sweep`)."""
    lines = lines or {}
    spec, problems = _parse_spec(raw, lines, origin, touched or set())
    method = spec.method if spec else str(raw.get("method", "grid"))
    known = [row[0] for row in describe_schema()]
    params, faults = space.parse_params(raw.get("parameters"), method, lines, origin, known)
    problems += faults
    base = _load_base(raw.get("base"), lines, origin, base_dir, default_name, base_overrides,
                      problems)
    if problems or spec is None or base is None:
        raise ConfigError(problems or [f"{origin}: invalid sweep"])
    base_raw, base_lines, base_origin, exp_dir, exp = base
    sweep = Sweep(spec, spec.name or default_name, params, base_raw, base_lines, base_origin,
                  exp_dir, exp, origin)
    _check_semantics(sweep, lines)
    if spec.method == "grid":
        sweep.points, sweep.layouts = _grid(sweep)
    else:
        _probe(sweep, lines)
    return sweep


def _where(lines: dict[str, int], origin: str, path: str) -> str:
    probe = path
    while probe and probe not in lines:
        probe = probe.rpartition(".")[0]
    return f"{origin}:{lines.get(probe, 1)}"


def _parse_spec(raw: dict[str, Any], lines: dict[str, int], origin: str,
                touched: set[str]) -> tuple[SweepSpec | None, list[str]]:
    try:
        return SweepSpec.model_validate(raw), []
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = [str(x) for x in err["loc"]]
            if loc and loc[0] in ("base", "parameters") and err["type"] != "missing":
                loc = loc[:1]  # `base` is either a path or a mapping: one message
            path = ".".join(loc)
            where = f"--set {path}" if path in touched else f"{_where(lines, origin, path)}: {path}"
            problems.append(f"{where}: {_message(err)}")
        return None, sorted(set(problems), key=problems.index)


def _message(err: Any) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(str(loc[-1]), list(SweepSpec.model_fields), 1, 0.6)
        return "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else
                                f"; known keys: {', '.join(SweepSpec.model_fields)}")
    if kind == "missing":
        return "required"
    if loc and loc[0] == "base":
        return f"expected a path or an experiment mapping (got {err.get('input')!r})"
    return f"{err['msg']} (got {err.get('input')!r})"


def _load_base(base: Any, lines: dict[str, int], origin: str, base_dir: Path, name: str,
               overrides: list[str] | tuple[str, ...], problems: list[str]
               ) -> tuple[dict[str, Any], dict[str, int], str, Path, Experiment] | None:
    """(raw mapping with overrides, its lines, its origin, folder for data paths, experiment)."""
    if isinstance(base, str):
        path = base_dir / base
        try:
            raw, blines = read_config_file(path)
        except ConfigError as e:
            problems += [f"{_where(lines, origin, 'base')}: base: {p}" for p in e.problems]
            return None
        borigin, bdir = str(path), path.parent
    elif isinstance(base, dict):
        raw, borigin, bdir = base, origin, base_dir
        blines = {k.removeprefix("base."): v for k, v in lines.items() if k.startswith("base.")}
    else:
        return None  # reported by the spec
    if not isinstance(raw, dict):
        problems.append(f"{borigin}:1: the base experiment must be a mapping of sections")
        return None
    try:
        merged, touched = apply_overrides(raw, overrides)
        exp = validate_experiment(merged, blines, borigin, bdir, name, touched)
    except ConfigError as e:
        problems += [p.replace("--set ", "--set base.", 1) for p in e.problems]
        return None
    return merged, blines, borigin, bdir, exp


def _check_semantics(sweep: Sweep, lines: dict[str, int]) -> None:
    s, origin, problems = sweep.spec, sweep.origin, []
    if s.method != "grid" and s.trials is None:
        problems.append(f"{_where(lines, origin, 'method')}: trials: method {s.method} needs "
                        f"trials: N (the number of configurations to run)")
    if s.method != "grid" and not sweep.params:
        problems.append(f"{_where(lines, origin, 'parameters')}: parameters: method {s.method} "
                        f"needs at least one parameter to sample")
    minimized = metric_mode(s.metric) == "min"
    if s.direction is not None and minimized != (s.direction == "minimize"):
        problems.append(f"{_where(lines, origin, 'direction')}: direction: {s.metric} should "
                        f"be {'minimized' if minimized else 'maximized'} "
                        f"(got {s.direction})")
    task = sweep.base_exp.resolved_task
    if s.metric in (REGRESSION_METRICS if task == "classification" else CLASSIFICATION_METRICS):
        problems.append(f"{_where(lines, origin, 'metric')}: metric: {s.metric} does not apply "
                        f"to the base experiment's task ({task})")
    if s.seeds > s.max_population:
        problems.append(f"{_where(lines, origin, 'max_population')}: max_population: must be "
                        f">= seeds ({s.seeds}) (got {s.max_population})")
    problems += [f"{_where(lines, origin, 'parameters.' + key)}: parameters.{key}: {msg}"
                 for key, msg in space.never_active(sweep.params, sweep.base_values)]
    if problems:
        raise ConfigError(problems)
    if s.method == "grid" and s.trials is not None:
        sweep.notes.append(f"trials: {s.trials} is ignored by a grid (it runs every point)")


def schema_defaults() -> dict[str, Any]:
    """Every experiment field's default, flat (dotted keys)."""
    return flatten(Experiment().model_dump(mode="json"))


def _point_text(point: space.Point) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in point.params.items()) or "the base"


def _grid(sweep: Sweep) -> tuple[list[space.Point], dict[str, str]]:
    """Every grid point, validated, grouped by layout (stable within a layout)."""
    try:
        points = space.grid_points(sweep.params, sweep.base_values, schema_defaults())
    except ValueError as e:
        raise ConfigError([f"{sweep.origin}: parameters: {e}"]) from None
    bad: dict[str, list[space.Point]] = defaultdict(list)
    layouts: dict[str, str] = {}
    for point in points:
        try:
            layouts[point.key] = layout_key(sweep.experiment(point))
        except ConfigError as e:
            for problem in e.problems:
                bad[problem.removeprefix("--set ")].append(point)
    if bad:
        raise ConfigError([f"{sweep.origin}: {len(pts)} of {len(points)} grid points do not "
                           f"validate: {problem} (e.g. {_point_text(pts[0])})"
                           for problem, pts in bad.items()])
    order = {lay: i for i, lay in enumerate(dict.fromkeys(layouts[p.key] for p in points))}
    return sorted(points, key=lambda p: order[layouts[p.key]]), layouts


def _probe(sweep: Sweep, lines: dict[str, int]) -> None:
    """random/tpe: every choice and both bounds of every range must give a valid config
    (with some value of the other parameters, for the rules that tie fields together)."""
    defaults, base = schema_defaults(), sweep.base_values
    problems = []
    for p in sweep.params:
        for v in p.probe_values():
            faults = _faults(sweep, {p.key: v}, base, defaults)
            if not faults:
                continue
            partners = ({q.key: w, p.key: v} for q in sweep.params if q is not p
                        for w in q.probe_values())
            if any(not _faults(sweep, chosen, base, defaults) for chosen in partners):
                continue
            where = _where(lines, sweep.origin, f"parameters.{p.key}")
            problems += [f"{where}: parameters.{p.key}: value {json.dumps(v)}: {f}"
                         for f in faults]
    if problems:
        raise ConfigError(problems)


def _faults(sweep: Sweep, chosen: dict[str, Any], base: dict[str, Any],
            defaults: dict[str, Any]) -> list[str]:
    point = space.resolve_point(chosen, sweep.params, base, defaults)
    try:
        sweep.experiment(point)
    except ConfigError as e:
        return [re.sub(r"^--set ", "", p) for p in e.problems]
    return []

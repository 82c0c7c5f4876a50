"""Reading a sweep file: every problem in it reported in one pass, before any trial exists.

The spec's keys, the parameters, the base experiment, the rules that tie them together and
every configuration (all grid points; for random/tpe every choice and both ends of every range)
are checked together, and `ConfigError` lists all faults, each at its line of the sweep file
(or of the base file that wrote the value).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from fcnet_cli.config import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    ConfigError,
    Experiment,
    Loc,
    Problem,
    Source,
    apply_overrides,
    check,
    layout_key,
    locate,
    metric_mode,
    problems_from,
    read_config_file,
    read_source,
    source_from_mapping,
    with_overrides,
)
from fcnet_cli.sweep import space
from fcnet_cli.sweep.overrides import not_an_experiment, split_overrides
from fcnet_cli.sweep.spec import Sweep, SweepSpec, known_keys, point_text, schema_defaults

__all__ = ["load_sweep", "sweep_from_mapping"]

METHODS: tuple[str, ...] = get_args(SweepSpec.model_fields["method"].annotation)


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """Read a sweep file, apply `--set` items (`base.key=value` for the base experiment,
    `key=value` for the sweep's own keys) and validate everything. Raises ConfigError."""
    p = Path(path)
    raw, lines = read_config_file(p)
    if not isinstance(raw, dict):
        raise ConfigError([f"{p}:1: a sweep file is a mapping (name, base, method, "
                           f"parameters, ...)"])
    not_an_experiment(raw, p)
    split = split_overrides(raw, overrides, lines, str(p))
    merged, touched = apply_overrides(split.raw, split.own)
    where = {k: Loc(str(p), v) for k, v in lines.items()}
    where.update({k: Loc(f"--set {k}") for k in touched})
    where.update({f"parameters.{k}": Loc(f"--set parameters.{k}") for k in split.params})
    sweep = sweep_from_mapping(merged, where, str(p), p.parent, p.stem, split.base)
    sweep.notes[:0] = split.notes
    return sweep


def sweep_from_mapping(raw: dict[str, Any], where: Mapping[str, Loc] | None = None,
                       origin: str = "<sweep>", base_dir: Path = Path("."),
                       default_name: str = "sweep", base_overrides: Sequence[str] = ()
                       ) -> Sweep:
    """Validate a sweep mapping (see `load_sweep`)."""
    where = dict(where or {})
    default = Loc(origin, 1)
    spec, found = _parse_spec(raw, where, default)
    method = spec.method if spec else raw.get("method", "grid")
    params, faults = space.parse_params(raw.get("parameters"), method, where, default,
                                        known_keys())
    problems = [str(p) for p in found + faults]
    base = _load_base(raw.get("base"), where, origin, base_dir, default_name, base_overrides,
                      problems)
    if base is None or method not in METHODS:
        raise ConfigError(problems or [f"{origin}: invalid sweep"])
    source, exp = base
    # with a faulty spec, the configurations are still checked (one pass) with its method
    checked = spec or SweepSpec.model_construct(method=method, base="")
    sweep = Sweep(checked, checked.name or default_name, params, source, exp, origin, where)
    found = _semantics(sweep) if spec is not None else []
    found += [Problem(sweep.param_loc(key), f"parameters.{key}", msg)
              for key, msg in space.never_active(params, sweep.base_values)]
    if method == "grid":
        sweep.points, sweep.layouts, bad_points = _grid(sweep)
        found += bad_points
    else:
        found += _probe(sweep)
    problems += [str(p) for p in found]
    if problems:
        raise ConfigError(problems)
    if method == "grid" and checked.trials is not None:
        sweep.notes.append(f"trials: {checked.trials} is ignored by a grid (it runs every point)")
    return sweep


def _parse_spec(raw: dict[str, Any], where: Mapping[str, Loc],
                default: Loc) -> tuple[SweepSpec | None, list[Problem]]:
    try:
        return SweepSpec.model_validate(raw), []
    except ValidationError as e:
        found = problems_from(e, SweepSpec, where, default, collapse=("base", "parameters"))
        got = raw.get("base")
        return None, [Problem(p.where, p.path, f"expected a path or an experiment mapping "
                                               f"(got {got!r})")
                      if p.path == "base" and p.message != "required" else p for p in found]


def _load_base(base: Any, where: Mapping[str, Loc], origin: str, base_dir: Path, name: str,
               overrides: Sequence[str], problems: list[str]
               ) -> tuple[Source, Experiment] | None:
    """The base experiment (file or inline mapping, `extends:` resolved, `--set base.*`
    applied) and its validation; faults go to `problems` (None when there is no base)."""
    here = locate(where, "base", Loc(origin, 1))
    try:
        if isinstance(base, str):
            path = base_dir / base
            if not path.is_file():
                problems.append(str(Problem(here, "base", f"no such file ({path})")))
                return None
            source = read_source(path)
        elif isinstance(base, dict):
            lines = {k.removeprefix("base."): loc.line for k, loc in where.items()
                     if k.startswith("base.") and loc.line is not None}
            source = source_from_mapping(base, lines, origin, base_dir)
        else:
            return None  # reported by the spec
        source.default_name = name
        source = with_overrides(source, overrides, prefix="base.")
    except ConfigError as e:
        problems += e.problems
        return None
    exp, faults = check(source)
    problems += [str(p) for p in faults]
    return None if exp is None else (source, exp)


def _semantics(sweep: Sweep) -> list[Problem]:
    """The rules that tie the spec's keys together."""
    s, out = sweep.spec, []

    def at(key: str, message: str) -> None:
        out.append(Problem(locate(sweep.where, key, Loc(sweep.origin, 1)), key, message))

    if s.method != "grid" and s.trials is None:
        at("method", f"method {s.method} needs trials: N (the number of configurations "
                     f"to run)")
    if s.method != "grid" and not sweep.params:
        at("parameters", f"method {s.method} needs at least one parameter to sample")
    minimized = metric_mode(s.metric) == "min"
    if s.direction is not None and minimized != (s.direction == "minimize"):
        at("direction", f"{s.metric} should be {'minimized' if minimized else 'maximized'} "
                        f"(got {s.direction})")
    task = sweep.base_exp.resolved_task
    if s.metric in (REGRESSION_METRICS if task == "classification" else CLASSIFICATION_METRICS):
        at("metric", f"{s.metric} does not apply to the base experiment's task ({task})")
    if s.seeds > s.max_population:
        at("max_population", f"must be >= seeds ({s.seeds}) (got {s.max_population})")
    n = sweep.base_exp.training.seeds
    if n > 1:  # a sweep repeats configurations with its own `seeds:`; it would go unused
        at("base.training.seeds", f"a sweep does not use training.seeds (got {n}): set "
                                  f"`seeds: {n}` in the sweep file to train each "
                                  f"configuration with {n} seeds")
    if sweep.base_exp.model.ensemble != 1:  # a trial is one member of the sweep's population
        at("base.model.ensemble", f"a sweep trains single models (got ensemble "
                                  f"{sweep.base_exp.model.ensemble}): sweep without it, then "
                                  "train the best configuration with model.ensemble")
    return out


def _grid(sweep: Sweep) -> tuple[list[space.Point], dict[str, str], list[Problem]]:
    """Every grid point, validated, grouped by layout (stable within a layout)."""
    try:
        points = space.grid_points(sweep.params, sweep.base_values, schema_defaults())
    except ValueError as e:
        return [], {}, [Problem(locate(sweep.where, "parameters", Loc(sweep.origin, 1)),
                                "parameters", str(e))]
    bad: dict[Problem, list[space.Point]] = defaultdict(list)
    layouts: dict[str, str] = {}
    for point in points:
        exp, faults = sweep.check(point.values())
        for fault in faults:
            bad[fault].append(point)
        if exp is not None:
            layouts[point.key] = layout_key(exp)
    if bad:
        return [], {}, [Problem(f.where, f.path, f"{len(pts)} of {len(points)} grid points "
                                                 f"do not validate: {f.message} "
                                                 f"(e.g. {point_text(pts[0].params)})")
                        for f, pts in bad.items()]
    order = {lay: i for i, lay in enumerate(dict.fromkeys(layouts[p.key] for p in points))}
    return sorted(points, key=lambda p: order[layouts[p.key]]), layouts, []


def _probe(sweep: Sweep) -> list[Problem]:
    """random/tpe: every choice and both bounds of every range must give a valid config
    (with some value of the other parameters, for the rules that tie fields together)."""
    defaults, base = schema_defaults(), sweep.base_values

    def faults(chosen: dict[str, Any]) -> list[Problem]:
        point = space.resolve_point(chosen, sweep.params, base, defaults)
        return sweep.check(point.values())[1]

    out = []
    for p in sweep.params:
        for v in p.probe_values():
            found = faults({p.key: v})
            if not found:
                continue
            partners = ({q.key: w, p.key: v} for q in sweep.params if q is not p
                        for w in q.probe_values())
            if any(not faults(chosen) for chosen in partners):
                continue
            path = f"parameters.{p.key}"
            out += [Problem(sweep.param_loc(p.key), path, f"value {json.dumps(v)}: "
                            + (f.message if f.path == path else f"{f.path}: {f.message}"))
                    for f in found]
    return out

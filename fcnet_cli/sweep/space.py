"""A sweep's search space: parameter forms, conditional parameters, grid points, sampling.

No torch and no optuna import: sampling goes through the `suggest_*` methods of the trial it is
given. A *point* is one configuration: the swept parameters that apply to it, plus the
parameters it switches off (reset to their schema defaults, which is effect-free by the rule
table below).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fcnet_cli.config import Loc, Problem, locate

__all__ = [
    "RULES",
    "Condition",
    "Param",
    "Point",
    "decode",
    "grid_points",
    "is_active",
    "never_active",
    "parse_params",
    "resolve_point",
    "suggest_point",
]

MAX_GRID = 100_000  # points of the full product, before collapsing conditional parameters
RANGE_FORMS = ("uniform", "log_uniform", "int")


@dataclass(frozen=True)
class Condition:
    """`key`'s value must satisfy `allowed` for a dependent parameter to matter."""

    key: str
    allowed: Callable[[Any], bool]
    text: str  # how the docs and errors say it, e.g. "regularization.type is not none"


def _is(key: str, *values: str) -> Condition:
    return Condition(key, lambda v: v in values, f"{key} is {' or '.join(values)}")


_MOMENTUM = Condition("optimizer.momentum", lambda v: isinstance(v, int | float) and v > 0,
                      "optimizer.momentum > 0")
_SCHEDULER = {
    "step_size": ("step",), "gamma": ("step", "multistep", "exponential"),
    "milestones": ("multistep",), "t_max": ("cosine",), "eta_min": ("cosine",),
    "monitor": ("plateau",), "factor": ("plateau",), "patience": ("plateau",),
    "threshold": ("plateau",), "cooldown": ("plateau",), "min_lr": ("plateau",),
    "max_lr": ("onecycle",), "pct_start": ("onecycle",),
}
# parameter -> conditions under which it changes training at all (all must hold)
RULES: dict[str, tuple[Condition, ...]] = {
    "regularization.strength": (Condition("regularization.type", lambda v: v != "none",
                                          "regularization.type is not none"),),
    "regularization.l1_ratio": (_is("regularization.type", "elastic_net"),),
    "optimizer.momentum": (_is("optimizer.name", "sgd", "rmsprop"),),
    "optimizer.nesterov": (_is("optimizer.name", "sgd"), _MOMENTUM),
    "optimizer.dampening": (_is("optimizer.name", "sgd"), _MOMENTUM),
    "optimizer.betas": (_is("optimizer.name", "adam", "adamw"),),
    "optimizer.alpha": (_is("optimizer.name", "rmsprop"),),
    **{f"scheduler.{k}": (_is("scheduler.name", *v),) for k, v in _SCHEDULER.items()},
}


@dataclass(frozen=True)
class Param:
    """One swept key: a list of choices, or a float/int range (`step`, grid-only `num`)."""

    key: str
    kind: str  # choice | float | int
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    num: int | None = None

    @property
    def encoded(self) -> bool:
        """Optuna choices must be scalars: lists (e.g. model.hidden) travel as JSON text."""
        return any(isinstance(c, list | dict) for c in self.choices)

    def grid_values(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.num is not None:
            if self.log:
                a, b = math.log(self.low), math.log(self.high)
                return [_tidy(math.exp(a + (b - a) * i / (self.num - 1))) for i in range(self.num)]
            return [_tidy(self.low + (self.high - self.low) * i / (self.num - 1))
                    for i in range(self.num)]
        assert self.step is not None
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [_tidy(self.low + i * self.step) for i in range(n)]

    def grid_count(self) -> int:
        """len(grid_values()) without building the list (a hostile `num` is refused first)."""
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return len(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.num is not None:
            return self.num
        assert self.step is not None
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    def probe_values(self) -> list[Any]:
        """The values whose configs are validated before a random/tpe sweep starts."""
        if self.kind == "choice":
            return list(self.choices)
        if self.step is None:
            return [self.low, self.high]
        last = self.low + (self.grid_count() - 1) * self.step  # without listing the range
        return [self.low, int(last) if self.kind == "int" else _tidy(last)]

    def encode(self, value: Any) -> Any:
        """The value as Optuna stores it (JSON text for a list or mapping); see `decode`."""
        return json.dumps(value) if self.encoded else value

    def choices_for_optuna(self, *, grid: bool) -> list[Any]:
        values = self.grid_values() if grid else list(self.choices)
        return [self.encode(v) for v in values]


def _tidy(x: float) -> float:
    """Round away float noise (0.30000000000000004 -> 0.3) while keeping 12 significant digits."""
    return float(f"{x:.12g}")


def decode(param: Param, value: Any) -> Any:
    return json.loads(value) if param.encoded and isinstance(value, str) else value


# ---------------------------------------------------------------- parsing


def parse_params(raw: Any, method: str, where: Mapping[str, Loc], default: Loc,
                 known: Sequence[str]) -> tuple[list[Param], list[Problem]]:
    """`parameters:` mapping -> Params, and one problem per fault (at the key's line)."""
    if raw is None:
        return [], []
    if not isinstance(raw, dict):
        return [], [Problem(locate(where, "parameters", default), "parameters",
                            "must be a mapping of dotted.key: values")]
    params, problems = [], []
    for key, spec in raw.items():
        fault = _key_fault(str(key), known)
        if fault is None:
            param, fault = _parse_form(str(key), spec, method)
            if param is not None:
                params.append(param)
        if fault is not None:
            path = f"parameters.{key}"
            problems.append(Problem(locate(where, path, default), path, fault))
    return params, problems


def _key_fault(key: str, known: Sequence[str]) -> str | None:
    import difflib

    if key in ("training.seed", "training.seeds"):
        return f"the sweep sets {key} itself: use `seeds:` to repeat configurations"
    if key in ("model.ensemble", "model.ensemble_kind"):
        return (f"a sweep trains single models ({key} cannot be swept): train the best "
                "configuration with model.ensemble")
    if key.startswith("output."):
        return "the sweep names and places its runs itself (output.* cannot be swept)"
    if key in known:
        return None
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return "unknown parameter" + (f"; did you mean '{hint[0]}'?" if hint else
                                  " (`fcnet schema` lists every key)")


def _parse_form(key: str, spec: Any, method: str) -> tuple[Param | None, str | None]:
    if isinstance(spec, list):
        if not spec:
            return None, "needs at least one value"
        encoded = [json.dumps(v, sort_keys=True) for v in spec]
        if len(set(encoded)) != len(encoded):
            return None, f"repeats a value (got {spec!r})"
        return Param(key, "choice", tuple(spec)), None
    if not isinstance(spec, dict):
        return None, (f"expected a list of values or {{uniform|log_uniform|int: [low, high]}} "
                      f"(got {spec!r})")
    forms = [f for f in RANGE_FORMS if f in spec]
    extra = sorted(set(spec) - set(RANGE_FORMS) - {"step", "num"})
    if len(forms) != 1 or extra:
        return None, (f"expected exactly one of uniform, log_uniform, int (plus optional step "
                      f"or num) (got keys {', '.join(map(str, spec))})")
    form = forms[0]
    bounds, step, num = spec[form], spec.get("step"), spec.get("num")
    fault = _range_fault(form, bounds, step, num, method)
    if fault:
        return None, fault
    kind = "int" if form == "int" else "float"
    return Param(key, kind, low=bounds[0], high=bounds[1], log=form == "log_uniform",
                 step=step, num=num), None


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _range_fault(form: str, bounds: Any, step: Any, num: Any, method: str) -> str | None:
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(map(_number, bounds))):
        return f"{form}: expected [low, high] (got {bounds!r})"
    low, high = bounds
    if form == "int" and not all(isinstance(b, int) for b in bounds):
        return f"int: bounds must be integers (got {bounds!r})"
    if not low < high:
        return f"{form}: low must be < high (got {bounds!r})"
    if form == "log_uniform" and low <= 0:
        return f"log_uniform: bounds must be > 0 (got {bounds!r})"
    if step is not None and (not _number(step) or step <= 0 or form == "log_uniform"
                             or (form == "int" and not isinstance(step, int))):
        return f"step: must be a positive {'integer' if form == 'int' else 'number'} " \
               f"and cannot go with log_uniform (got {step!r})"
    if num is not None:
        if method != "grid":
            return "num: sets the number of grid points; it applies to method grid only"
        if form == "int" or step is not None:
            return "num: give step or num, not both (int ranges use step)"
        if not isinstance(num, int) or isinstance(num, bool) or num < 2:
            return f"num: must be an integer >= 2 (got {num!r})"
    if method == "grid" and form != "int" and step is None and num is None:
        return f"a grid needs a finite set of values: add num: N (points from low to high" \
               f"{', log-spaced' if form == 'log_uniform' else ''}) or step: S, or give a list"
    return None


# ---------------------------------------------------------------- conditional parameters


def is_active(key: str, values: Mapping[str, Any]) -> bool:
    """Does `key` change training, given the effective config `values` (flat dotted keys)?"""
    return all(c.allowed(values.get(c.key)) for c in RULES.get(key, ()))


def _depth(key: str) -> int:
    return 1 + max((_depth(c.key) for c in RULES.get(key, ())), default=-1)


def _ordered(params: Sequence[Param]) -> list[Param]:
    """Condition keys before the parameters that depend on them (stable otherwise)."""
    return sorted(params, key=lambda p: _depth(p.key))


@dataclass
class Point:
    """One configuration: swept values that apply, and switched-off keys reset to defaults."""

    params: dict[str, Any]  # in the spec's parameter order
    resets: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity of the configuration (canonical JSON of `params`)."""
        return json.dumps(self.params, sort_keys=True)

    def values(self) -> dict[str, Any]:
        """Every dotted key this configuration sets on the base: resets, then swept values."""
        return {**self.resets, **self.params}


def resolve_point(chosen: Mapping[str, Any], params: Sequence[Param],
                  base: Mapping[str, Any], defaults: Mapping[str, Any]) -> Point:
    """Drop the chosen values that do not apply; reset switched-off keys to their defaults."""
    values = dict(base)
    kept: dict[str, Any] = {}
    for p in _ordered(params):
        if p.key in chosen and is_active(p.key, values):
            values[p.key] = kept[p.key] = chosen[p.key]
        elif p.key in chosen:
            values[p.key] = defaults.get(p.key)
    swept = {p.key for p in params}
    resets = {}
    for key, conds in RULES.items():
        touched = key in swept or any(c.key in swept for c in conds)
        if touched and key not in kept and not is_active(key, values) \
                and base.get(key) != defaults.get(key):
            resets[key] = defaults.get(key)
    order = [p.key for p in params]
    return Point({k: kept[k] for k in order if k in kept}, resets)


def grid_points(params: Sequence[Param], base: Mapping[str, Any],
                defaults: Mapping[str, Any]) -> list[Point]:
    """Every distinct configuration of the product, in product order (first key slowest)."""
    size = math.prod(p.grid_count() for p in params)
    if size > MAX_GRID:
        raise ValueError(f"the grid has {size} points (more than {MAX_GRID})")
    seen: dict[str, Point] = {}
    for combo in itertools.product(*(p.grid_values() for p in params)):
        point = resolve_point(dict(zip((p.key for p in params), combo, strict=True)), params,
                              base, defaults)
        seen.setdefault(point.key, point)
    return list(seen.values())


def never_active(params: Sequence[Param], base: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for swept keys that no reachable value of their conditions switches on."""
    swept = {p.key: p for p in params}
    problems = []
    for p in params:
        for c in RULES.get(p.key, ()):
            cand = swept[c.key].probe_values() if c.key in swept else [base.get(c.key)]
            if not any(c.allowed(v) for v in cand):
                problems.append((p.key, f"has no effect: it needs {c.text}, which no "
                                        f"configuration of this sweep has"))
                break
    return problems


def suggest_point(trial: Any, params: Sequence[Param], base: Mapping[str, Any],
                  defaults: Mapping[str, Any], *, grid: bool) -> Point:
    """Ask an Optuna trial for the values that apply (conditions first); returns the point.

    Enqueued and retried trials answer with their fixed values; a grid suggests categorically
    from its grid values.
    """
    values = dict(base)
    chosen: dict[str, Any] = {}
    for p in _ordered(params):
        if not is_active(p.key, values):
            values[p.key] = defaults.get(p.key)
            continue
        if grid or p.kind == "choice":
            raw = trial.suggest_categorical(p.key, p.choices_for_optuna(grid=grid))
            value = decode(p, raw)
        elif p.kind == "int":
            value = trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1))
        else:
            value = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
        values[p.key] = chosen[p.key] = value
    return resolve_point(chosen, params, base, defaults)

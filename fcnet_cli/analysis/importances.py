"""Optuna hyperparameter importances of a sweep.

The study is loaded from the Optuna storage the sweep directory holds (a journal file or an
SQLite database). When there is none, or it cannot be read, an in-memory study is rebuilt from
the trial run directories themselves: one completed trial per run, its parameters the config
keys that differ between the runs, its value the best validation metric.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.compare import RunRecord, differing_params, metric_value
from fcnet_cli.metrics import direction

__all__ = ["Importances", "load_study", "param_importances", "study_from_runs"]

_SQLITE = (".db", ".sqlite", ".sqlite3")
_JOURNAL = (".log", ".journal", ".jsonl")
_NOT_SWEPT = ("training.seed",)  # repeats of one configuration, not a hyperparameter


@dataclass
class Importances:
    source: str  # where the trials came from, in words
    n_trials: int
    rows: list[tuple[str, float]]  # (parameter, importance), largest first; sums to 1


def _storage_candidates(sweep_dir: Path) -> list[Path]:
    files = [p for p in sorted(sweep_dir.iterdir()) if p.is_file()]
    return [p for p in files if p.suffix in _SQLITE + _JOURNAL or "journal" in p.name]


def load_study(sweep_dir: Path) -> Any | None:
    """The Optuna study stored in `sweep_dir` (the first one found), or None."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    for path in _storage_candidates(sweep_dir):
        try:
            if path.suffix in _SQLITE:
                storage: Any = f"sqlite:///{path.resolve()}"
            else:
                from optuna.storages.journal import JournalFileBackend, JournalStorage

                storage = JournalStorage(JournalFileBackend(str(path)))
            names = optuna.study.get_all_study_names(storage)
            if names:
                return optuna.load_study(study_name=names[0], storage=storage)
        except Exception:  # not a storage after all: try the next file
            continue
    return None


def _distribution(values: list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric and len(set(values)) > 1:
        lo, hi = min(values), max(values)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(lo), int(hi))
        return FloatDistribution(float(lo), float(hi), log=lo > 0 and hi / lo >= 100)
    return CategoricalDistribution(sorted({_choice(v) for v in values}, key=str))


def _choice(v: Any) -> Any:
    """Optuna categorical choices are None/bool/int/float/str: lists become JSON text."""
    return v if v is None or isinstance(v, bool | int | float | str) else json.dumps(v)


def study_from_runs(runs: Sequence[RunRecord], metric: str,
                    params: Sequence[str] | None = None) -> Any:
    """An in-memory study with one completed trial per run that has a best epoch.

    Its parameters are `params` (default: the config keys that differ between the runs,
    seeds left out), read from each run's resolved config, so a conditional parameter (a
    penalty strength where the type is none) still has a value in every trial.
    """
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction=direction(metric))
    done = [r for r in runs if metric_value(r, metric) is not None]
    varying = differing_params(done, exclude=_NOT_SWEPT)
    keys = [p for p in params if p in varying] if params is not None else varying
    dists = {p: _distribution([r.config.get(p) for r in done]) for p in keys}
    for r in done:
        value = metric_value(r, metric)
        assert value is not None
        values = {p: r.config.get(p) for p in keys}
        values = {p: v if not isinstance(dists[p], optuna.distributions.CategoricalDistribution)
                  else _choice(v) for p, v in values.items()}
        study.add_trial(optuna.trial.create_trial(value=value, params=values,
                                                  distributions=dists))
    return study


def param_importances(sweep_dir: Path | None, runs: Sequence[RunRecord], metric: str,
                      params: Sequence[str] | None = None) -> Importances | None:
    """fANOVA importances (seeded) of the swept parameters; None when not computable.

    The trials are the run directories (one per seed), valued by their best `metric`: every
    swept parameter that varies is in every trial, which Optuna's own study of a sweep with
    conditional parameters cannot give (its importances keep only the parameters that every
    trial has). Without usable runs, the Optuna study stored in `sweep_dir` is used.
    """
    import optuna

    study = study_from_runs(runs, metric, params)
    source = f"{len(study.trials)} run directories (value: best {metric})"
    if len(study.trials) < 2 and sweep_dir is not None:
        stored = load_study(sweep_dir)
        if stored is not None:
            study, source = stored, f"Optuna study '{stored.study_name}' in {sweep_dir}"
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return None
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):  # e.g. no parameter varies between the trials
        return None
    rows = [(k, float(v)) for k, v in found.items()
            if math.isfinite(v) and (params is None or k in params)]
    if not rows:
        return None
    return Importances(source, len(complete), rows)

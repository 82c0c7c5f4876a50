"""Runs grouped by configuration (seeds together) and the per-run measures the studies read."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fcnet_cli.analysis.compare import RunRecord, differing_params

__all__ = ["Group", "best_val_accuracy", "group_runs", "last", "test_accuracy"]


@dataclass
class Group:
    """One configuration: the runs (one per seed) that share every swept value."""

    params: dict[str, Any]
    runs: list[RunRecord]

    def values(self, fn: Callable[[RunRecord], float]) -> list[float]:
        return [fn(r) for r in self.runs]

    def mean(self, fn: Callable[[RunRecord], float]) -> float:
        vals = [v for v in self.values(fn) if math.isfinite(v)]
        return statistics.fmean(vals) if vals else math.nan


def group_runs(runs: Sequence[RunRecord]) -> list[Group]:
    """Runs grouped by configuration (seeds together), in the order they are given."""
    params = differing_params(runs, exclude=("training.seed",))
    groups: dict[str, Group] = {}
    for r in runs:
        values = {p: r.config.get(p) for p in params}
        groups.setdefault(json.dumps(values), Group(values, [])).runs.append(r)
    return list(groups.values())


def last(key: str) -> Callable[[RunRecord], float]:
    return lambda r: r.metrics[-1].get(key, math.nan) if r.metrics else math.nan


def test_accuracy(r: RunRecord) -> float:
    return float((r.summary.get("test") or {}).get("accuracy", math.nan))


def best_val_accuracy(r: RunRecord) -> float:
    return max(r.column("val_accuracy"), default=math.nan)

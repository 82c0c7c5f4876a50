"""Seed groups read back from disk: the statistics of every final metric over the seeds.

A group folder (`fcnet train --seeds N`, see `engine.group`) holds group.json and one run
directory per seed. `group_stats` reads each seed's summary.json and summarizes, over the
seeds, every metric a single run reports: the validation metrics at the best epoch (the
`best` checkpoint; the monitored one first) and every test metric of that checkpoint;
`write_stats` stores them in group.json. `best_seed` is the seed a command that needs one
model (eval, predict, export) uses. No torch here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.stats import Summary, summarize
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.seedpick import (
    BestSeed,
    best_seed,
    group_monitor,
    is_group_dir,
    read_json_object,
)
from fcnet_cli.metrics import REGISTRY

__all__ = ["BestSeed", "GroupStats", "best_seed", "group_monitor", "group_stats",
           "is_group_dir", "metric_values", "write_stats"]

# from summary.json "best": every validation metric of the registry, the training loss and
# accuracy (as the run summary shows them), then the gaps
VAL_KEYS = (*(f"val_{m}" for m in REGISTRY if not m.startswith("gap_")), "train_loss",
            "train_accuracy", "gap_accuracy", "gap_loss")


@dataclass
class GroupStats:
    """One row per metric: (name, summary over the seeds), in a stable order."""

    group_dir: Path
    name: str
    seeds: list[int]
    statuses: dict[str, str]
    rows: list[tuple[str, Summary]]
    monitor: str = "val_loss"  # the validation metric that chose each seed's best epoch

    def get(self, metric: str) -> Summary | None:
        return next((s for name, s in self.rows if name == metric), None)

    def to_dict(self) -> dict[str, Any]:
        return {name: s.to_dict() for name, s in self.rows}


def metric_values(summary: dict[str, Any]) -> dict[str, float]:
    """A run's final metrics from its summary.json: val_* and gaps at the best epoch, and the
    test metrics of that checkpoint (loss, accuracy and those under "metrics") that the
    metric registry knows. NaN values (a regression run's accuracy) are left out."""
    out: dict[str, float] = {}
    best = summary.get("best") or {}
    for key in VAL_KEYS:
        if _number(best.get(key)):
            out[key] = float(best[key])
    test = summary.get("test") or {}
    scalars = {**(test.get("metrics") or {}), **{k: test.get(k) for k in ("loss", "accuracy")}}
    for key in REGISTRY:
        if _number(scalars.get(key)):
            out[f"test_{key}"] = float(scalars[key])
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _seed_summaries(group_dir: Path, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for run in data.get("runs", []):
        summary = RunDir(group_dir / str(run)).summary
        out.append((str(run), read_json_object(summary) if summary.is_file() else {}))
    return out


def group_stats(group_dir: Path) -> GroupStats:
    """Mean, std and 95 % t-interval (cut to each metric's bounds) over the seeds of every
    final metric of a group; the monitored metric first."""
    group_dir = Path(group_dir)
    data = read_json_object(RunDir(group_dir).group)
    monitor = group_monitor(data)
    per_seed = [metric_values(s) for _, s in _seed_summaries(group_dir, data)]
    found = {k for values in per_seed for k in values}
    order = [monitor, *VAL_KEYS, *(f"test_{m}" for m in REGISTRY)]
    keys = [k for k in dict.fromkeys(order) if k in found]
    rows = [(k, summarize([v.get(k, math.nan) for v in per_seed], k)) for k in keys]
    return GroupStats(group_dir, str(data.get("name", group_dir.name)),
                      [int(s) for s in data.get("seeds", [])], dict(data.get("status") or {}),
                      rows, monitor)


def write_stats(stats: GroupStats) -> Path:
    """Store the statistics in group.json (key `stats`), atomically."""
    path = RunDir(stats.group_dir).group
    data = read_json_object(path)
    data["stats"] = stats.to_dict()
    tmp = path.with_name(f".tmp-group-{os.getpid()}.json")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


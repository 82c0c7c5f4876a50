"""Seed groups read back from disk: the statistics of every final metric over the seeds.

A group folder (`fcnet train --seeds N`, see `engine.group`) holds group.json and one run
directory per seed. `group_stats` reads each seed's summary.json and summarizes, over the
seeds, the validation metrics at the best epoch (the `best` checkpoint) and every scalar test
metric of that checkpoint; `write_stats` stores them in group.json. No torch here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.stats import Summary, summarize
from fcnet_cli.errors import UsageError

__all__ = ["GROUP_FILE", "GroupStats", "group_stats", "is_group_dir", "metric_values",
           "write_stats"]

GROUP_FILE = "group.json"  # the name engine.group writes
VAL_KEYS = ("val_loss", "val_accuracy", "gap_accuracy")  # from summary.json "best"
SKIPPED_TEST_KEYS = ("n",)


@dataclass
class GroupStats:
    """One row per metric: (name, summary over the seeds), in a stable order."""

    group_dir: Path
    name: str
    seeds: list[int]
    statuses: dict[str, str]
    rows: list[tuple[str, Summary]]

    def get(self, metric: str) -> Summary | None:
        return next((s for name, s in self.rows if name == metric), None)

    def to_dict(self) -> dict[str, Any]:
        return {name: s.to_dict() for name, s in self.rows}


def is_group_dir(path: Path) -> bool:
    return (Path(path) / GROUP_FILE).is_file()


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def metric_values(summary: dict[str, Any]) -> dict[str, float]:
    """A run's final metrics from its summary.json: val_* at the best epoch, test_* scalars."""
    out: dict[str, float] = {}
    best = summary.get("best") or {}
    for key in VAL_KEYS:
        if isinstance(best.get(key), int | float):
            out[key] = float(best[key])
    for key, value in (summary.get("test") or {}).items():
        if key not in SKIPPED_TEST_KEYS and isinstance(value, int | float) \
                and not isinstance(value, bool):
            out[f"test_{key}"] = float(value)
    return out


def group_stats(group_dir: Path) -> GroupStats:
    """Mean, std and 95 % t-interval over the seeds of every final metric of a group."""
    group_dir = Path(group_dir)
    data = _read(group_dir / GROUP_FILE)
    per_seed: list[dict[str, float]] = []
    for run in data.get("runs", []):
        summary = group_dir / str(run) / "summary.json"
        per_seed.append(metric_values(_read(summary)) if summary.is_file() else {})
    keys = list(dict.fromkeys(k for values in per_seed for k in values))
    rows = [(k, summarize([v.get(k, math.nan) for v in per_seed])) for k in keys]
    return GroupStats(group_dir, str(data.get("name", group_dir.name)),
                      [int(s) for s in data.get("seeds", [])], dict(data.get("status") or {}),
                      rows)


def write_stats(stats: GroupStats) -> Path:
    """Store the statistics in group.json (key `stats`), atomically."""
    path = stats.group_dir / GROUP_FILE
    data = _read(path)
    data["stats"] = stats.to_dict()
    tmp = path.with_name(f".tmp-group-{os.getpid()}.json")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


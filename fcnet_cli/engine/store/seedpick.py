"""Which seed of a seed group stands for the group where one model is expected.

`fcnet eval`, `predict` and `export` (and `load_model`) given a group folder use the seed whose
best checkpoint has the best monitored validation metric; the metric registry says which way
is better. Reads each seed's summary.json only; no torch.

    chosen = best_seed(Path("runs/digits/20261204-101500"))
    chosen.run_dir, chosen.line(group_dir)   # .../seed-3, "… using seed-3, the best of 5 …"
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import UsageError
from fcnet_cli.metrics import best_first

__all__ = ["BestSeed", "best_seed", "group_monitor", "is_group_dir",
           "read_json_object"]


def is_group_dir(path: Path) -> bool:
    return RunDir(path).is_group()


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object (group.json, summary.json); UsageError otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def group_monitor(data: dict[str, Any]) -> str:
    """The monitored validation metric of a group, from its group.json config."""
    config = data.get("config") or {}
    stopping = (config.get("training") or {}).get("early_stopping") or {}
    monitor = stopping.get("monitor") if isinstance(stopping, dict) else None
    return str(monitor) if monitor else "val_loss"


@dataclass
class BestSeed:
    """The seed of a group that a single-model command uses, and why."""

    run_dir: Path
    monitor: str
    value: float
    of: int  # seeds with a best checkpoint and a value, among which it was chosen

    def line(self, group_dir: Path) -> str:
        return (f"{group_dir} is a seed group: using {self.run_dir.name}, the best of "
                f"{self.of} seeds by {self.monitor} ({self.value:.4f}); give "
                f"{group_dir.name}/{RunDir.SEED_PREFIX}N for another")


def best_seed(group_dir: Path) -> BestSeed:
    """The seed whose best checkpoint has the best monitored validation metric (the metric
    registry says which way is better). Raises UsageError when no seed has a checkpoint."""
    group_dir = Path(group_dir)
    data = read_json_object(RunDir(group_dir).group)
    monitor = group_monitor(data)
    found = []
    for run in data.get("runs", []):
        rd = RunDir(group_dir / str(run))
        best = (read_json_object(rd.summary).get("best") or {}) if rd.summary.is_file() else {}
        if _number(best.get(monitor)) and rd.checkpoint(RunDir.BEST).is_dir():
            found.append((rd.path, float(best[monitor])))
    if not found:
        raise UsageError(f"{group_dir}: no seed of this group has a best checkpoint yet; "
                         "give a seed's folder (e.g. its seed-N) once one has finished an epoch")
    run_dir, value = best_first(found, monitor, value=lambda f: f[1])[0]
    return BestSeed(run_dir, monitor, value, len(found))

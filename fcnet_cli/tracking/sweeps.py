"""A sweep in MLflow: a parent run for the sweep, a child per trial, from leaderboard.csv.

Each finished trial's child carries its first seed's config as params, its metric mean and std
over the seeds, that seed's epochs, and tags `fcnet.state` (complete, pruned, fail) and
`fcnet.status` / `fcnet.reason`; pruned trials end KILLED, failed ones FAILED. The parent holds
sweep.yaml and leaderboard.csv as artifacts, the trial counts and the best value; the best
trial's child also holds the model of its best seed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.tracking import records
from fcnet_cli.tracking.runs import end_run, log_epochs, log_run_files, start_run
from fcnet_cli.tracking.store import Tracking

__all__ = ["TRIAL_STATUS", "sync_sweep"]

TRIAL_STATUS = {"complete": "completed", "pruned": "interrupted", "fail": "failed"}
_AFTER_SWEPT = "best_epochs"  # leaderboard.csv: the swept keys sit between "values" and this


def _leaderboard(sweep_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    path = sweep_dir / "leaderboard.csv"
    if not path.is_file():
        return [], []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    swept = fields[fields.index("values") + 1:fields.index(_AFTER_SWEPT)] \
        if "values" in fields and _AFTER_SWEPT in fields else []
    return swept, rows


def _first_run_dir(row: dict[str, str]) -> Path | None:
    try:
        dirs = json.loads(row.get("run_dirs") or "[]")
    except ValueError:
        return None
    found = [Path(d) for d in dirs if RunDir(d).is_run()]
    return found[0] if found else None


def _log_trial(tracking: Tracking, parent: str, row: dict[str, str], swept: list[str],
               metric: str, *, best: bool) -> str | None:
    state = row.get("state", "")
    tags = {"fcnet.trial": row.get("trial", ""), "fcnet.state": state}
    tags.update({f"fcnet.{k}": row[k] for k in ("status", "reason") if row.get(k)})
    child = start_run(tracking, f"trial-{row.get('trial', '?')}", tags, parent=parent)
    if child is None:
        return None
    run_dir = _first_run_dir(row)
    values = {f"{metric}_mean": row.get(f"{metric}_mean"), f"{metric}_std": row.get(
        f"{metric}_std"), "trial_seconds": row.get("seconds")}
    metrics = records.row_metrics({k: v for k, v in values.items() if v})
    if run_dir is not None:
        log_run_files(tracking, child, run_dir, history=True, model=False)
    checkpoint = Path(row.get("checkpoint") or "-")
    if best and (checkpoint / RunDir.META).is_file():  # the best seed's checkpoint
        from fcnet_cli.tracking.model import log_model

        tracking.call("model", log_model, child, checkpoint)
    else:  # no run directory (e.g. an invalid configuration): the swept values only
        from mlflow.entities import Param

        params = [Param(k, row.get(k, "")) for k in swept if row.get(k, "") != ""]
        tracking.call("trial params", lambda c: c.log_batch(child, params=params))
    log_epochs(tracking, child, [(0, metrics)])
    end_run(tracking, child, TRIAL_STATUS.get(state, "failed"))
    return child


def _sweep_meta(sweep_dir: Path) -> dict[str, Any]:
    import yaml

    path = sweep_dir / "sweep.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


def sync_sweep(tracking: Tracking, sweep_dir: Path, run_name: str | None = None) -> list[str]:
    """Log a sweep folder (its leaderboard.csv): the MLflow run ids, parent first."""
    meta = _sweep_meta(sweep_dir)
    metric = str(meta.get("metric", "val_accuracy"))
    swept, rows = _leaderboard(sweep_dir)
    parent = start_run(tracking, run_name or sweep_dir.name,
                       {"fcnet.kind": "sweep", "fcnet.run_dir": str(sweep_dir.resolve()),
                        "fcnet.metric": metric})
    if parent is None:
        return []
    ids = [parent]
    done = [r for r in rows if r.get("state") in TRIAL_STATUS]
    for row in done:
        child = _log_trial(tracking, parent, row, swept, metric, best=row.get("rank") == "1")
        if child is None:
            break
        ids.append(child)
    counts = {f"trials_{s}": float(sum(r.get("state") == s for r in rows)) for s in TRIAL_STATUS}
    best = [r for r in rows if r.get("rank") == "1"]
    if best and best[0].get(f"{metric}_mean"):
        counts[records.metric_key(f"best_{metric}")] = float(best[0][f"{metric}_mean"])
    log_epochs(tracking, parent, [(0, counts)])
    from mlflow.entities import Param

    params = [Param("sweep." + k, str(meta[k])) for k in ("method", "seeds", "metric", "trials")
              if k in meta]
    tracking.call("sweep params", lambda c: c.log_batch(parent, params=params))
    for name in ("sweep.yaml", "leaderboard.csv"):
        if (sweep_dir / name).is_file():
            tracking.call(name, lambda c, n=name: c.log_artifact(parent, str(sweep_dir / n)))
    end_run(tracking, parent, "completed")
    return ids

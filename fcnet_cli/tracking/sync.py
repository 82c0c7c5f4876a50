"""A finished folder logged to MLflow from its files (`fcnet mlflow-sync`): a run directory,
a seed group (a parent run with a child per seed and mean ± std on the parent) or a sweep
(a parent run with a child per trial)."""

from __future__ import annotations

import json
from pathlib import Path

from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.tracking import records
from fcnet_cli.tracking.runs import end_run, log_group_stats, log_run_files, start_run
from fcnet_cli.tracking.store import Tracking
from fcnet_cli.tracking.sweeps import sync_sweep

__all__ = ["sync_dir"]


def sync_dir(tracking: Tracking, path: Path, run_name: str | None = None) -> list[str]:
    """Log a finished run directory, seed group or sweep folder; the MLflow run ids, parent
    first (none when tracking failed: see `tracking.warning()`)."""
    if (path / "sweep.yaml").is_file():
        return sync_sweep(tracking, path, run_name)
    if RunDir(path).is_group():
        return _sync_group(tracking, path, run_name)
    run_id = start_run(tracking, run_name or path.name)
    if run_id is None:
        return []
    log_run_files(tracking, run_id, path, history=True)
    end_run(tracking, run_id, records.read_summary(path).get("status", "failed"))
    return [run_id]


def _sync_group(tracking: Tracking, group_dir: Path, run_name: str | None) -> list[str]:
    parent = start_run(tracking, run_name or group_dir.name, {"fcnet.kind": "seeds"})
    if parent is None:
        return []
    ids = [parent]
    group = json.loads(RunDir(group_dir).group.read_text(encoding="utf-8"))
    for run in group.get("runs", []):
        run_dir = group_dir / str(run)
        if not RunDir(run_dir).is_run():
            continue
        child = start_run(tracking, run_dir.name, parent=parent)
        if child is None:
            break
        log_run_files(tracking, child, run_dir, history=True)
        end_run(tracking, child, records.read_summary(run_dir).get("status", "failed"))
        ids.append(child)
    log_group_stats(tracking, parent, group_dir)
    end_run(tracking, parent, "completed")
    return ids

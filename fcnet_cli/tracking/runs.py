"""The pieces of an MLflow run, from fcnet's files: start and end a run, per-epoch metrics,
params, tags, final metrics, artifacts and the model of a run directory, a seed group's
statistics.

The live logger (`logger.py`) logs the epochs as they come and the rest of a run from its
files when the run ends; `sync.py` logs a finished folder. Every piece goes through
`Tracking.call`, so a failure leaves a warning, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.tracking import records
from fcnet_cli.tracking.store import Tracking

__all__ = ["STATUS", "end_run", "log_epochs", "log_group_stats", "log_params", "log_run_files",
           "start_run"]

PARENT = "mlflow.parentRunId"
# fcnet's run status -> MLflow's run status
STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "pruned": "FINISHED",
          "interrupted": "KILLED", "running": "RUNNING"}
_BATCH = 100  # MLflow takes at most 100 params (1000 metrics) per log_batch


def start_run(tracking: Tracking, name: str, tags: Mapping[str, str] | None = None,
              parent: str | None = None) -> str | None:
    """A new MLflow run in the tracking's experiment; its id, or None when tracking is off."""
    tags = {**(tags or {}), **({PARENT: parent} if parent else {})}

    def create(client: Any) -> str:
        run = client.create_run(tracking.experiment_id, run_name=name, tags=tags)
        return str(run.info.run_id)

    return tracking.call("the run", create)


def end_run(tracking: Tracking, run_id: str, status: str) -> None:
    tracking.call("run status", lambda c: c.set_terminated(run_id, STATUS.get(status, "FAILED")))


def _metrics(values: Mapping[str, float], step: int) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(v), now, step) for key, v in values.items()]


def log_epochs(tracking: Tracking, run_id: str, rows: list[tuple[int, dict[str, float]]]) -> None:
    """Per-epoch metrics, step = epoch."""
    metrics = [m for epoch, values in rows for m in _metrics(values, epoch)]

    def log(client: Any) -> None:
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])

    if metrics:
        tracking.call("epoch metrics", log)


def _log_values(tracking: Tracking, run_id: str, params: Mapping[str, str],
                metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
    from mlflow.entities import Param, RunTag

    ps = [Param(k, v) for k, v in params.items()]
    ts = [RunTag(k, v) for k, v in tags.items()]

    def log(client: Any) -> None:
        for i in range(0, max(len(ps), 1), _BATCH):
            client.log_batch(run_id, params=ps[i:i + _BATCH])
        client.log_batch(run_id, metrics=_metrics(metrics, 0), tags=ts)

    tracking.call("params, tags and final metrics", log)


def log_params(tracking: Tracking, run_id: str, run_dir: Path) -> None:
    """The resolved config (config.yaml) as flattened params."""
    if RunDir(run_dir).is_run():
        _log_values(tracking, run_id, records.params(records.read_config(run_dir)), {}, {})


def log_run_files(tracking: Tracking, run_id: str, run_dir: Path, *, history: bool,
                  params: bool = True, model: bool = True) -> None:
    """Everything a finished run directory holds: params, tags, final and test metrics,
    artifacts, the best checkpoint as a pyfunc model, ONNX exports; `history`: also every
    epoch of metrics.csv (the live logger has sent those already)."""
    config = records.read_config(run_dir)
    summary = records.read_summary(run_dir)
    if history:
        log_epochs(tracking, run_id, records.epoch_rows(run_dir))
    _log_values(tracking, run_id, records.params(config) if params else {},
                records.final_metrics(summary), records.run_tags(run_dir, config, summary))
    for path in records.artifact_files(run_dir):
        tracking.call(path.name, lambda c, p=path: c.log_artifact(run_id, str(p)))
    for path in records.onnx_files(run_dir):
        tracking.call(path.name, lambda c, p=path: c.log_artifact(run_id, str(p), "onnx"))
    best = RunDir(run_dir).checkpoint(RunDir.BEST)
    if model and RunDir(run_dir).meta(RunDir.BEST).is_file():
        from fcnet_cli.tracking.model import log_model

        tracking.call("model", log_model, run_id, best)


def log_group_stats(tracking: Tracking, run_id: str, group_dir: Path) -> None:
    """A seed group's parent: <metric>_mean and <metric>_std over the seeds, group.json."""
    from fcnet_cli.analysis.groups import group_stats

    stats = group_stats(group_dir)
    values: dict[str, float] = {}
    for name, s in stats.rows:
        for suffix, x in (("mean", s.mean), ("std", s.std)):
            if x == x:  # NaN (one seed's std) left out
                values[records.metric_key(f"{name}_{suffix}")] = float(x)
    _log_values(tracking, run_id, {}, values, {"fcnet.seeds": ",".join(map(str, stats.seeds)),
                                               "fcnet.run_dir": str(group_dir.resolve())})
    for name in (RunDir.GROUP, RunDir.CONFIG):
        if (group_dir / name).is_file():
            tracking.call(name, lambda c, n=name: c.log_artifact(run_id, str(group_dir / n)))

"""The MLflow engine callback: one MLflow run per member, each epoch's metrics as they come
(step = epoch), the rest of the run from its files when it ends.

    logger = MlflowLogger(settings_for(exp))
    result = train(exp, callbacks=[logger])
    logger.close()
    print(logger.tracking.warning() or "logged")

`seeds=True` (`fcnet train --seeds N`): a parent run named after the group folder with a child
per seed; `finish_group` adds the mean and std over the seeds to the parent.
"""

from __future__ import annotations

from pathlib import Path

from fcnet_cli.events import Callback, EpochMetrics, RunResult, RunStart
from fcnet_cli.tracking import records
from fcnet_cli.tracking.runs import (
    end_run,
    log_epochs,
    log_group_stats,
    log_params,
    log_run_files,
    start_run,
)
from fcnet_cli.tracking.store import Tracking, TrackingSettings

__all__ = ["MlflowLogger"]


class MlflowLogger(Callback):
    """Logs every member that has a run directory; never raises (see `Tracking`)."""

    def __init__(self, settings: TrackingSettings, *, seeds: bool = False) -> None:
        self.tracking = Tracking(settings)
        self.seeds = seeds
        self.parent: str | None = None
        self.runs: dict[int, tuple[str, Path]] = {}  # member -> (MLflow run id, run dir)
        self.run_ids: list[str] = []  # every run started, parent first

    def _start_parent(self, group_dir: Path) -> None:
        if self.parent is None:
            name = self.tracking.settings.run_name or group_dir.name
            self.parent = start_run(self.tracking, name, {"fcnet.kind": "seeds",
                                                          "fcnet.run_dir": str(group_dir)})
            if self.parent is not None:
                self.run_ids.append(self.parent)

    def on_run_start(self, start: RunStart) -> None:
        for member, run_dir in enumerate(start.run_dirs):
            if run_dir is None:
                continue
            path = Path(run_dir).resolve()
            if self.seeds:
                self._start_parent(path.parent)
                name = path.name
            else:
                name = self.tracking.settings.run_name or path.name
            run_id = start_run(self.tracking, name, {"fcnet.run_dir": str(path)},
                               parent=self.parent)
            if run_id is None:
                return
            self.run_ids.append(run_id)
            self.runs[member] = (run_id, path)
            log_params(self.tracking, run_id, path)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        for m in metrics:
            if m.member in self.runs:
                run_id = self.runs[m.member][0]
                log_epochs(self.tracking, run_id, [(m.epoch, records.row_metrics(m.row()))])

    def on_member_end(self, member: int, result: RunResult) -> None:
        found = self.runs.pop(member, None)
        if found is None:
            return
        run_id, run_dir = found
        log_run_files(self.tracking, run_id, run_dir, history=False, params=False)
        end_run(self.tracking, run_id, result.status)

    def finish_group(self, group_dir: Path, status: str = "completed") -> None:
        """The parent of a seed group: mean ± std over the seeds, group.json; then ended."""
        if self.parent is None:
            return
        log_group_stats(self.tracking, self.parent, group_dir)
        end_run(self.tracking, self.parent, status)
        self.parent = None

    def close(self) -> None:
        """End what is still open (an interrupted run)."""
        for run_id, _ in self.runs.values():
            end_run(self.tracking, run_id, "interrupted")
        self.runs.clear()
        if self.parent is not None:
            end_run(self.tracking, self.parent, "interrupted")
            self.parent = None

"""`fcnet train --seeds N`: the seeds of one experiment as one population, then their statistics."""

import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fcnet_cli.cli.app import EXIT_CODES, EXIT_SIGNAL
from fcnet_cli.cli.tracking import report_tracking
from fcnet_cli.events import BatchProgress, Callback, EpochMetrics, RunResult, RunStart

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from fcnet_cli.config import Experiment
    from fcnet_cli.display import Console
    from fcnet_cli.events import StopToken
    from fcnet_cli.tracking.logger import MlflowLogger

__all__ = ["SeedLabels", "train_seeds"]


class SeedLabels(Callback):
    """Forwards engine events to `inner`, naming each member with a seed's run directory
    (`seed-<s>`: a seed group's or an ensemble's member) by its seed ("seed 3")."""

    def __init__(self, inner: Callback) -> None:
        self.inner = inner

    def on_run_start(self, start: RunStart) -> None:
        names = [f"seed {Path(d).name.removeprefix('seed-')}"
                 if d and Path(d).name.startswith("seed-") else n
                 for n, d in zip(start.names, start.run_dirs, strict=True)]
        self.inner.on_run_start(replace(start, names=names))

    def on_batch_end(self, progress: BatchProgress) -> None:
        self.inner.on_batch_end(progress)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        self.inner.on_epoch_end(metrics)

    def on_member_end(self, member: int, result: RunResult) -> None:
        self.inner.on_member_end(member, result)

    def close(self) -> None:
        self.inner.close()


def train_seeds(exp: "Experiment", *, quiet: bool, resume: Path | None, out: "Console",
                shown: "list[Callback]",
                signals_to: "Callable[[StopToken], AbstractContextManager[None]]",
                tracker: "MlflowLogger | None" = None) -> int:
    """Train (or resume) a seed group, write its statistics to group.json, print them.

    `shown` are the display callbacks of `fcnet train`; `signals_to` routes SIGINT/SIGTERM to
    the stop token while training; `tracker` logs the group to MLflow (a parent run with a
    child per seed).
    """
    import time

    from fcnet_cli import display
    from fcnet_cli.analysis.groups import group_stats, write_stats
    from fcnet_cli.engine.train.group import train_group
    from fcnet_cli.events import StopToken

    stop = StopToken()
    callbacks: list[Callback] = [SeedLabels(cb) for cb in shown]
    started = time.perf_counter()
    try:
        with signals_to(stop):
            result = train_group(exp, callbacks=[*callbacks, *([tracker] if tracker else [])],
                                 stop=stop, resume=resume)
    finally:
        for cb in callbacks:
            cb.close()  # type: ignore[attr-defined]
    stats = group_stats(Path(result.group_dir))
    write_stats(stats)
    if tracker is not None:
        tracker.finish_group(Path(result.group_dir), result.status)
        tracker.close()
        report_tracking(tracker.tracking, quiet=quiet, ids=tracker.run_ids, folder=result.group_dir)
    if quiet:
        typer.echo(result.group_dir)
    else:
        display.render_group_summary(out, stats, time.perf_counter() - started)
    if result.status == "interrupted":
        reason = stop.reason or "SIGINT"
        typer.echo(f"interrupted ({reason}); resume with: "
                   f"fcnet train --resume {shlex.quote(result.group_dir)}", err=True)
        return EXIT_SIGNAL.get(reason, EXIT_SIGNAL["SIGINT"])
    return EXIT_CODES.get(result.status, 1)

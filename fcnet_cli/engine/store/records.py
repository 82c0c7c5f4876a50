"""What a run leaves on disk: config.yaml, metrics.csv, summary.json; the resume state read
back from its checkpoints; the status of a group's or an ensemble's members.

Writes and reads what it is given: the training side (`engine.train.finish`) builds the
records and evaluates; names come from `layout.RunDir`, atomic writing from `files.py`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import fcnet_cli
from fcnet_cli.config import (
    Experiment,
    dump_experiment,
    read_config_file,
    validate_experiment,
)
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import CheckpointError, UsageError
from fcnet_cli.events import EpochMetrics, LayerStats, RunResult

__all__ = [
    "RESUMABLE",
    "ResumeState",
    "last_epoch",
    "layer_stats",
    "load_resume_state",
    "load_resume_states",
    "member_status",
    "prepare_run_dirs",
    "resumable_members",
    "saved_experiment",
    "summary",
    "versions",
    "write_metrics",
    "write_summary",
]

def versions() -> dict[str, str]:
    """The versions a run records (summary.json, checkpoint metadata) and `--version` shows."""
    return {"fcnet": fcnet_cli.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def layer_stats(rows: Sequence[tuple[str, float, float, float]]) -> list[LayerStats]:
    return [LayerStats(layer=n, l2_norm=l2, l1_norm=l1, sparsity=sp) for n, l2, l1, sp in rows]


def prepare_run_dirs(exps: Sequence[Experiment], run_dirs: Sequence[Path] | None, *,
                     resume: bool, locks: contextlib.ExitStack) -> list[Path]:
    """Create (or, on resume, clean) one run directory per member, locked on `locks`.

    Each directory is locked before anything in it is written or removed, so a second
    process never touches a live run's in-progress files: it gets RunBusyError (exit 2).
    A new run gets config.yaml; a resumed one loses its stale temporary files.
    """
    out: list[Path] = []
    for i, exp in enumerate(exps):
        if resume:
            assert run_dirs is not None
            rd = Path(run_dirs[i])
        elif run_dirs is None:
            rd = ck.new_run_dir(Path(exp.output.dir), exp.name)
        else:
            rd = Path(run_dirs[i])
            rd.mkdir(parents=True, exist_ok=True)
        # the text first: a locked run directory gets its config.yaml at once (a process
        # resuming it reads that file before it meets the lock)
        text = None if resume else dump_experiment(exp)
        locks.enter_context(ck.RunLock(rd))
        if text is None:
            ck.clean_stale(rd)
        else:
            ck.atomic_write_text(RunDir(rd).config, text)
        out.append(rd)
    return out


def saved_experiment(run_dir: Path) -> Experiment:
    """The config a run started with, as saved (paths resolved). Raises UsageError when the
    folder has no config.yaml, ConfigError when it no longer validates."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a run directory (no {RunDir.CONFIG})")
    raw, _ = read_config_file(path)
    return validate_experiment(raw, str(path))


def write_metrics(run_dir: Path, history: Sequence[EpochMetrics]) -> None:
    """metrics.csv: one row per epoch, rewritten atomically."""
    if not history:
        return
    rows = [m.row() for m in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    ck.atomic_write_text(RunDir(run_dir).metrics, buf.getvalue())


def write_summary(run_dir: Path, result: RunResult) -> None:
    """summary.json of `result`, rewritten atomically."""
    ck.atomic_write_text(RunDir(run_dir).summary, json.dumps(summary(result), indent=2))


def summary(r: RunResult) -> dict[str, Any]:
    """The content of summary.json."""
    best, last = r.best, r.last
    return {
        "name": r.name, "status": r.status, "reason": r.reason, "monitor": r.monitor,
        "best_epoch": r.best_epoch, "last_epoch": None if last is None else last.epoch,
        "best": None if best is None else best.row(),
        "last": None if last is None else last.row(),
        "gap_at_best": None if best is None else {"accuracy": best.gap_accuracy,
                                                  "loss": best.gap_loss},
        "gap_at_last": None if last is None else {"accuracy": last.gap_accuracy,
                                                  "loss": last.gap_loss},
        "test": None if r.test is None else r.test.to_dict(),
        "notices": list(r.notices),
        "seconds": r.seconds, "run_dir": r.run_dir, "threads": torch.get_num_threads(),
        "versions": versions(), "engine": r.engine, "engine_reason": r.engine_reason,
        "products": list(r.products), "precision": r.precision,
    }


@dataclass
class ResumeState:
    weights: dict[str, torch.Tensor]
    train: dict[str, Any]
    best_weights: dict[str, torch.Tensor] | None


def load_resume_states(run_dirs: Sequence[Path]) -> list[ResumeState] | None:
    """Each run's resume state; None when no run got as far as its first `last` checkpoint.

    A run killed during its first epoch has nothing to resume from: it starts again from
    epoch 1 in the same directory (its partial metrics.csv and summary.json are removed;
    the caller holds the run's lock). A population where only some members have a `last`
    checkpoint cannot be resumed.
    """
    started = [RunDir(rd).checkpoint(RunDir.LAST).exists() for rd in run_dirs]
    if not any(started):
        for rd in run_dirs:
            for path in (RunDir(rd).metrics, RunDir(rd).summary):
                path.unlink(missing_ok=True)
        return None
    return [load_resume_state(rd) for rd in run_dirs]


def load_resume_state(run_dir: Path | None) -> ResumeState:
    """The `last` checkpoint (weights + training state) and the `best` weights of a run."""
    assert run_dir is not None
    last = RunDir(run_dir).checkpoint(RunDir.LAST)
    if not last.exists():
        raise CheckpointError(f"{run_dir}: nothing to resume (no "
                              f"{RunDir.CHECKPOINTS}/{RunDir.LAST})")
    weights = ck.load_checkpoint(last).state_dict
    train = ck.load_train_state(last)
    best_dir = RunDir(run_dir).checkpoint(RunDir.BEST)
    best = ck.load_checkpoint(best_dir).state_dict if best_dir.exists() else None
    return ResumeState(weights, train, best)


RESUMABLE = ("interrupted", "failed")  # member statuses `--resume` continues


def member_status(run_dir: Path) -> str:
    """A member run's status from its summary.json (`failed`: none; `interrupted`: killed)."""
    try:
        status = json.loads(RunDir(run_dir).summary.read_text("utf-8")).get("status")
    except (OSError, ValueError):
        return "failed"  # never finished its first epoch: no summary yet
    # `running` after the process is gone: killed mid-run, resumable from its last checkpoint
    return "interrupted" if status in (None, "running") else str(status)


def last_epoch(run_dir: Path) -> int:
    """The epoch of a run's `last` checkpoint (0: none recorded, -1: unreadable)."""
    meta = RunDir(run_dir).meta(RunDir.LAST)
    try:
        return int(json.loads(meta.read_text("utf-8")).get("epoch") or 0)
    except (OSError, ValueError):
        return -1


def resumable_members(where: Path, dirs: Sequence[Path], noun: str, hint: str = "") -> list[int]:
    """Indices of the member folders `--resume` continues (a group's seeds, an ensemble's
    members); all must have stopped at the same epoch, since one population steps in
    lock-step. ``noun`` names the members in messages ("seed", "member"), ``hint`` follows
    the different-epochs refusal.

    Raises:
        UsageError: nothing left to resume, or unfinished members at different epochs.
    """
    todo = [i for i, d in enumerate(dirs) if member_status(d) in RESUMABLE]
    if not todo:
        raise UsageError(f"{where}: every {noun} already finished; nothing to resume")
    epochs = {last_epoch(dirs[i]) for i in todo}
    if len(epochs) > 1:
        raise UsageError(f"cannot resume {where} as one population: its unfinished {noun}s "
                         f"stopped at different epochs ({sorted(epochs)}){hint}")
    return todo

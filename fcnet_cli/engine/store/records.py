"""What a run leaves on disk: config.yaml, metrics.csv, summary.json, checkpoint metadata.

The training loop calls these; the layout and atomic writing live in `checkpoint.py`.
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
    ConfigError,
    Experiment,
    dump_experiment,
    flatten,
    read_config_file,
    validate_experiment,
)
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.data.load import DataSplits
from fcnet_cli.engine.train.defaults import AUTO_FIELDS, set_fields
from fcnet_cli.engine.evaluate import evaluate_split, majority_notice
from fcnet_cli.engine.train.members import Member
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.errors import CheckpointError, UsageError
from fcnet_cli.events import EpochMetrics, LayerStats, RunResult

__all__ = [
    "RESUMABLE",
    "ResumeState",
    "check_resume_config",
    "finish_member",
    "last_epoch",
    "layer_stats",
    "load_resume_state",
    "load_resume_states",
    "member_status",
    "prepare_run_dirs",
    "resumable_members",
    "save_model",
    "versions",
    "write_metrics",
    "write_progress",
]

def versions() -> dict[str, str]:
    """The versions a run records (summary.json, checkpoint metadata) and `--version` shows."""
    return {"fcnet": fcnet_cli.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def layer_stats(rows: Sequence[tuple[str, float, float, float]]) -> list[LayerStats]:
    return [LayerStats(layer=n, l2_norm=l2, l1_norm=l1, sparsity=sp) for n, l2, l1, sp in rows]


def prepare_run_dirs(exps: Sequence[Experiment], run_dirs: Sequence[Path] | None, resume: bool,
                     locks: contextlib.ExitStack) -> list[Path]:
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
            ck.atomic_write_text(rd / "config.yaml", text)
        out.append(rd)
    return out


MACHINE_KEYS = ("training.threads",)  # how fast it runs here, not what it computes


def check_resume_config(run_dir: Path, exp: Experiment) -> None:
    """Refuse to resume a run with a config other than the one it started with."""
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"{run_dir}: not a run directory (no config.yaml)")
    raw, _ = read_config_file(run_dir / "config.yaml")
    saved = validate_experiment(raw, str(run_dir / "config.yaml"))  # as saved: paths resolved
    a, b = flatten(saved.model_dump(mode="json")), flatten(exp.model_dump(mode="json"))
    # a field left out now was resolved from the same data by the same rule then
    auto = {k for k in AUTO_FIELDS if k not in set_fields(exp)}
    diff = [f"{k}: {a.get(k)!r} in the run, {b.get(k)!r} now"
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in MACHINE_KEYS and k not in auto]
    if diff:
        raise ConfigError([f"cannot resume {run_dir}: the config changed"] + diff)


def write_metrics(run_dir: Path, history: Sequence[EpochMetrics]) -> None:
    """metrics.csv: one row per epoch, rewritten atomically."""
    if not history:
        return
    rows = [m.row() for m in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    ck.atomic_write_text(run_dir / "metrics.csv", buf.getvalue())


def _meta(m: Member, data: DataSplits, epoch: int | None) -> dict[str, Any]:
    row = next((r for r in m.history if r.epoch == epoch), None)
    return {
        "format": ck.FORMAT, "version": ck.VERSION, "versions": versions(),
        "config": m.exp.model_dump(mode="json"), "in_features": data.n_features,
        # n_classes is the width of the last layer: the classes, or the regression targets
        "n_classes": data.n_outputs, "classes": list(data.classes), "task": data.task,
        "normalization": data.normalization.to_json(),
        "preprocessing": data.preprocessing.to_json(), "lineage": data.lineage, "epoch": epoch,
        "metrics": None if row is None else {k: v for k, v in row.row().items()
                                             if not k.startswith(("l1_", "l2_", "sparsity"))},
    }


def save_model(run_dir: Path, which: str, m: Member, data: DataSplits,
               state_dict: dict[str, torch.Tensor] | None = None,
               train_state: dict[str, Any] | None = None) -> None:
    """Write checkpoints/<which>: best → the member's best state; last → `state_dict`."""
    if which == "best":
        assert m.best_state is not None
        ck.save_checkpoint(run_dir, "best", m.best_state, _meta(m, data, m.best_epoch))
    else:
        assert state_dict is not None
        epoch = m.history[-1].epoch if m.history else None
        ck.save_checkpoint(run_dir, "last", state_dict, _meta(m, data, epoch), train_state)


def write_progress(m: Member) -> None:
    """metrics.csv, then summary.json saying how far the run got (status "running" until it
    ends), so a run killed with SIGKILL leaves records that agree with each other instead of
    the summary of an earlier interruption. `fcnet compare` shows such a run as incomplete.
    """
    assert m.run_dir is not None
    write_metrics(m.run_dir, m.history)
    result = RunResult(name=m.exp.name, run_dir=str(m.run_dir), status=m.status or "running",
                       history=list(m.history), best_epoch=m.best_epoch, monitor=m.monitor,
                       reason=m.reason, seconds=m.seconds)
    ck.atomic_write_text(m.run_dir / "summary.json", json.dumps(summary(result), indent=2))


def finish_member(m: Member, data: DataSplits) -> RunResult:
    """Test metrics of the best state, summary.json, and any best checkpoint still pending."""
    test, notices = None, list(data.notices)
    if m.best_state is not None:
        model = build_mlp(m.exp.model, data.n_features, data.n_outputs).to(data.x_test.device)
        model.load_state_dict(m.best_state)
        if len(data.y_test):
            test = evaluate_split(model, m.exp, data, "test")
            notices += test.notices
        elif data.task == "classification" and m.history and m.best_epoch is not None:
            acc = next(r.val_accuracy for r in m.history if r.epoch == m.best_epoch)
            notices += majority_notice(acc, data.y_val, data.classes, "val")[1]
        if m.run_dir is not None and m.best_dirty:
            save_model(m.run_dir, "best", m, data)
            m.best_dirty = False
    result = RunResult(name=m.exp.name, run_dir=None if m.run_dir is None else str(m.run_dir),
                       status=m.status or "interrupted", history=list(m.history),
                       best_epoch=m.best_epoch, monitor=m.monitor, test=test, reason=m.reason,
                       seconds=m.seconds, notices=notices, engine=m.engine,
                       engine_reason=m.engine_reason, products=list(m.products),
                       precision=m.exp.training.precision)
    if m.run_dir is not None:
        write_metrics(m.run_dir, m.history)
        ck.atomic_write_text(m.run_dir / "summary.json", json.dumps(summary(result), indent=2))
    return result


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
    started = [(rd / "checkpoints" / "last").exists() for rd in run_dirs]
    if not any(started):
        for rd in run_dirs:
            for name in ("metrics.csv", "summary.json"):
                (rd / name).unlink(missing_ok=True)
        return None
    return [load_resume_state(rd) for rd in run_dirs]


def load_resume_state(run_dir: Path | None) -> ResumeState:
    """The `last` checkpoint (weights + training state) and the `best` weights of a run."""
    assert run_dir is not None
    last = run_dir / "checkpoints" / "last"
    if not last.exists():
        raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoints/last)")
    weights = ck.load_checkpoint(last).state_dict
    train = ck.load_train_state(last)
    best_dir = run_dir / "checkpoints" / "best"
    best = ck.load_checkpoint(best_dir).state_dict if best_dir.exists() else None
    return ResumeState(weights, train, best)


RESUMABLE = ("interrupted", "failed")  # member statuses `--resume` continues


def member_status(run_dir: Path) -> str:
    """A member run's status from its summary.json (`failed`: none; `interrupted`: killed)."""
    try:
        status = json.loads((run_dir / "summary.json").read_text("utf-8")).get("status")
    except (OSError, ValueError):
        return "failed"  # never finished its first epoch: no summary yet
    # `running` after the process is gone: killed mid-run, resumable from its last checkpoint
    return "interrupted" if status in (None, "running") else str(status)


def last_epoch(run_dir: Path) -> int:
    """The epoch of a run's `last` checkpoint (0: none recorded, -1: unreadable)."""
    meta = run_dir / "checkpoints" / "last" / "meta.json"
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

"""What a member leaves in its run directory while it trains and when it ends: checkpoints
with their metadata, progress records, and the final record with the test split's metrics
(evaluated here, on the training side; `engine.store` only writes what it is given). Also the
check that a resumed run keeps the config it started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fcnet_cli.config import ConfigError, Experiment, flatten
from fcnet_cli.engine.data.load import DataSplits
from fcnet_cli.engine.evaluate import evaluate_split, majority_notice
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.store import records
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.train.defaults import AUTO_FIELDS, may_ensemble, set_fields
from fcnet_cli.engine.train.members import Member
from fcnet_cli.events import EvalResult, RunResult

__all__ = ["best_test", "check_resume_config", "checkpoint_meta", "finish_member", "save_model",
           "write_progress"]

MACHINE_KEYS = ("training.threads",)  # how fast it runs here, not what it computes


def check_resume_config(run_dir: Path, exp: Experiment) -> None:
    """Refuse to resume a run with a config other than the one it started with."""
    saved = records.saved_experiment(run_dir)
    a, b = flatten(saved.model_dump(mode="json")), flatten(exp.model_dump(mode="json"))
    # a field left out now was resolved from the same data by the same rule then
    auto = {k for k in AUTO_FIELDS if k not in set_fields(exp)}
    if may_ensemble(exp):
        auto.add("model.ensemble")
    diff = [f"{k}: {a.get(k)!r} in the run, {b.get(k)!r} now"
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in MACHINE_KEYS and k not in auto]
    if diff:
        raise ConfigError([f"cannot resume {run_dir}: the config changed"] + diff)


def checkpoint_meta(m: Member, data: DataSplits, epoch: int | None) -> dict[str, Any]:
    """The meta.json of member `m`'s checkpoint at `epoch` (None: no epoch recorded)."""
    row = next((r for r in m.history if r.epoch == epoch), None)
    return {
        "format": ck.FORMAT, "version": ck.VERSION, "versions": records.versions(),
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
    if which == RunDir.BEST:
        assert m.best_state is not None
        ck.save_checkpoint(run_dir, which, m.best_state, checkpoint_meta(m, data, m.best_epoch))
    else:
        assert state_dict is not None
        epoch = m.history[-1].epoch if m.history else None
        ck.save_checkpoint(run_dir, which, state_dict, checkpoint_meta(m, data, epoch),
                           train_state)


def write_progress(m: Member) -> None:
    """metrics.csv, then summary.json saying how far the run got (status "running" until it
    ends), so a run killed with SIGKILL leaves records that agree with each other instead of
    the summary of an earlier interruption. `fcnet compare` shows such a run as incomplete.
    """
    assert m.run_dir is not None
    records.write_metrics(m.run_dir, m.history)
    result = RunResult(name=m.exp.name, run_dir=str(m.run_dir), status=m.status or "running",
                       history=list(m.history), best_epoch=m.best_epoch, monitor=m.monitor,
                       reason=m.reason, seconds=m.seconds)
    records.write_summary(m.run_dir, result)


def best_test(model: torch.nn.Module, m: Member, data: DataSplits
              ) -> tuple[EvalResult | None, list[str]]:
    """`model` (member `m`'s best state) on the test split, and the run's notices: the data's
    and the test split's, or without a test split the majority-class warning on validation."""
    test, notices = None, list(data.notices)
    if len(data.y_test):
        test = evaluate_split(model, m.exp, data, "test")
        notices += test.notices
    elif data.task == "classification" and m.history and m.best_epoch is not None:
        acc = next(r.val_accuracy for r in m.history if r.epoch == m.best_epoch)
        notices += majority_notice(acc, data.y_val, data.classes, "val")[1]
    return test, notices


def finish_member(m: Member, data: DataSplits) -> RunResult:
    """Test metrics of the best state, summary.json, and any best checkpoint still pending."""
    test, notices = None, list(data.notices)
    if m.best_state is not None:
        model = build_mlp(m.exp.model, data.n_features, data.n_outputs).to(data.x_test.device)
        model.load_state_dict(m.best_state)
        test, notices = best_test(model, m, data)
        if m.run_dir is not None and m.best_dirty:
            save_model(m.run_dir, RunDir.BEST, m, data)
            m.best_dirty = False
    result = RunResult(name=m.exp.name, run_dir=None if m.run_dir is None else str(m.run_dir),
                       status=m.status or "interrupted", history=list(m.history),
                       best_epoch=m.best_epoch, monitor=m.monitor, test=test, reason=m.reason,
                       seconds=m.seconds, notices=notices, engine=m.engine,
                       engine_reason=m.engine_reason, products=list(m.products),
                       precision=m.exp.training.precision)
    if m.run_dir is not None:
        records.write_metrics(m.run_dir, m.history)
        records.write_summary(m.run_dir, result)
    return result

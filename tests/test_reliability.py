"""Nothing lost, every failure answered: divergence, disk full, locks, stale files, bad data."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import experiment
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import Experiment, dump_experiment, load_experiment
from fcnet_cli.engine.store.checkpoint import RunBusyError, RunLock, load_checkpoint
from fcnet_cli.engine.train import optim
from fcnet_cli.engine.train.loop import train, train_population
from fcnet_cli.errors import RunError
from fcnet_cli.events import Callback, EpochMetrics

RELIABILITY: dict[str, Any] = {
    "data": {"dataset": "iris"},
    "model": {"hidden": [8]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "training": {"epochs": 3},
}


def digest(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under the checkpoints folder, by path relative to the run."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run_dir / "checkpoints").rglob("*"))
            if p.is_file() and not p.is_symlink()}


class Snapshot(Callback):
    """Records the checkpoint files after each epoch."""

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.after: dict[int, dict[str, str]] = {}

    def on_run_start(self, start: Any) -> None:
        self.run_dir = Path(start.run_dirs[0])

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        assert self.run_dir is not None
        self.after[metrics[0].epoch] = digest(self.run_dir)


def blow_up_after_epoch_1(monkeypatch: pytest.MonkeyPatch) -> None:
    real = optim.epoch_lr
    monkeypatch.setattr(optim, "epoch_lr",
                        lambda cfg, base, epoch, epochs: 1e30 if epoch >= 1 else real(
                            cfg, base, epoch, epochs))


def test_divergence_stops_within_a_step_and_keeps_earlier_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blow_up_after_epoch_1(monkeypatch)
    snap = Snapshot()
    result = train(experiment(RELIABILITY, tmp_path / "runs", "rel"), callbacks=[snap])
    assert result.status == "diverged"
    assert result.reason is not None
    assert result.reason.startswith("non-finite loss at epoch 2, step ")
    assert [m.epoch for m in result.history] == [1]
    assert snap.run_dir is not None
    assert digest(snap.run_dir) == snap.after[1]  # best and last keep their epoch-1 contents
    summary = json.loads((snap.run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and "epoch 2" in summary["reason"]
    for t in load_checkpoint(snap.run_dir / "checkpoints" / "last").state_dict.values():
        assert torch.isfinite(t.float()).all()


def test_divergence_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blow_up_after_epoch_1(monkeypatch)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data: {{dataset: iris}}\nmodel: {{hidden: [8]}}\n"
                   f"training: {{epochs: 3, device: cpu}}\noutput: {{dir: {tmp_path}/runs}}\n")
    out = CliRunner().invoke(app, ["train", str(cfg)])
    assert out.exit_code == 3, out.output
    assert "diverged" in out.output


def test_only_the_diverged_member_stops(tmp_path: Path) -> None:
    good = experiment(RELIABILITY, tmp_path / "runs", "good")
    bad = experiment(RELIABILITY, tmp_path / "runs", "bad", optimizer={"lr": 1e30})
    results = train_population([good, bad, good.model_copy()])
    assert [r.status for r in results] == ["completed", "diverged", "completed"]
    assert results[1].best_epoch is None and results[1].test is None
    assert results[0].test is not None and results[0].test.accuracy > 0.6
    assert results[0].history[-1].val_loss == pytest.approx(results[2].history[-1].val_loss)


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = Snapshot()
    real_fsync = os.fsync

    class FailAfterEpoch1(Callback):
        def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
            def full(fd: int) -> None:
                raise OSError(28, "No space left on device")
            monkeypatch.setattr(os, "fsync", full)

    with pytest.raises(RunError, match="No space left on device") as err:
        train(experiment(RELIABILITY, tmp_path / "runs",
                         "rel"), callbacks=[snap, FailAfterEpoch1()])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "checkpoints" in str(err.value) or "metrics.csv" in str(err.value)
    assert snap.run_dir is not None
    assert digest(snap.run_dir) == snap.after[1]
    load_checkpoint(snap.run_dir / "checkpoints" / "last")  # still complete and verified
    assert not list(snap.run_dir.rglob(".tmp-*"))


def test_disk_full_exits_1_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data: {{dataset: iris}}\nmodel: {{hidden: [8]}}\n"
                   f"training: {{epochs: 2, device: cpu}}\noutput: {{dir: {tmp_path}/runs}}\n")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = CliRunner().invoke(app, ["train", str(cfg), "--quiet"])
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if "No space left" in line]
    assert len(lines) == 1 and "Traceback" not in out.output


def test_second_process_on_the_same_run_dir_is_refused(tmp_path: Path) -> None:
    exp = experiment(RELIABILITY, tmp_path / "runs", "locked", training={"epochs": 1})
    first = train(exp)
    assert first.run_dir is not None
    run_dir = Path(first.run_dir)
    before = digest(run_dir)
    with RunLock(run_dir), pytest.raises(RunBusyError, match="run in use by fcnet process"):
        train(exp.model_copy(update={"training": exp.training.model_copy(
            update={"epochs": 1})}), resume=run_dir)
    assert digest(run_dir) == before


def test_resume_cleans_temporary_leftovers(tmp_path: Path) -> None:
    from fcnet_cli.events import StopToken

    exp = experiment(RELIABILITY, tmp_path / "runs", "stale")
    stop = StopToken()

    class StopAfter1(Callback):
        def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
            stop.request("SIGTERM")

    r = train(exp, callbacks=[StopAfter1()], stop=stop)
    run_dir = Path(r.run_dir or "")
    (run_dir / "checkpoints" / ".tmp-deadbeef").mkdir()
    (run_dir / ".tmp-summary").write_text("partial")
    resumed = train(exp, resume=run_dir)
    assert resumed.status == "completed"
    assert not list(run_dir.rglob(".tmp-*"))


@pytest.mark.parametrize(("setup", "needle"), [
    ("missing", "file not found"),
    ("empty", "empty"),
    ("no_target", "species"),
    ("nan", "missing values in 1 column(s): 'b' 1 (row 4)"),
    ("few_rows", "rows"),
])
def test_bad_data_exits_2_with_one_line(tmp_path: Path, setup: str, needle: str) -> None:
    csv = tmp_path / "d.csv"
    rows = {"empty": "a,b,label\n",
            "no_target": "a,b,label\n1,2,x\n3,4,y\n",
            "nan": "a,b,label\n" + "".join(f"{i},{'nan' if i == 3 else i},{'xy'[i % 2]}\n"
                                           for i in range(40)),
            "few_rows": "a,b,label\n" + "".join(f"{i},{i},{i % 5}\n" for i in range(6))}
    if setup != "missing":
        csv.write_text(rows[setup])
    target = "species" if setup == "no_target" else "label"
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: d.csv, target: {target}}}\n"
                   f"training: {{epochs: 1, device: cpu}}\noutput: {{dir: {tmp_path}/runs}}\n")
    out = CliRunner().invoke(app, ["train", str(cfg), "--quiet"])
    assert out.exit_code == 2, out.output
    assert needle.lower() in out.output.lower() and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing written for a run that never started


def test_eval_with_wrong_feature_count_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,label\n" + "".join(f"{i % 7},{i % 3},{i % 5},{'xy'[i % 2]}\n"
                                                for i in range(60)))
    exp = Experiment.model_validate({
        "data": {"dataset": "csv", "path": str(data)}, "model": {"hidden": [4]},
        "training": {"epochs": 1, "device": "cpu"},
        "output": {"dir": str(tmp_path / "runs"), "name": "csv"}})
    r = train(exp)
    data.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 3},{'xy'[i % 2]}\n"
                                            for i in range(60)))
    out = CliRunner().invoke(app, ["eval", f"{r.run_dir}/checkpoints/best"])
    assert out.exit_code == 2, out.output
    assert "training data changed since the run" in out.output
    out = CliRunner().invoke(app, ["eval", f"{r.run_dir}/checkpoints/best",
                                   "--allow-changed-data"])
    assert out.exit_code == 2, out.output
    assert "no column 'c' (the model expects 3 columns: a, b, c)" in out.output
    assert "Traceback" not in out.output and len(out.output.splitlines()) == 1


def test_tensorboard_without_the_extra_is_a_usage_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnet_cli.engine.train import tensorboard

    monkeypatch.setattr(tensorboard, "available", lambda: False)  # as without the extra
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data: {{dataset: iris}}\ntraining: {{epochs: 1, device: cpu}}\n"
                   f"output: {{dir: {tmp_path}/runs, tensorboard: true}}\n")
    out = CliRunner().invoke(app, ["train", str(cfg), "--quiet"])
    assert out.exit_code == 2, out.output
    assert "tensorboard" in out.output and "Traceback" not in out.output


def test_sweep_with_tensorboard_but_without_the_extra_stops_before_any_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnet_cli.engine.train import tensorboard

    monkeypatch.setattr(tensorboard, "available", lambda: False)  # as without the extra
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base:\n  data: {{dataset: iris}}\n  training: {{epochs: 1, device: cpu}}\n"
                     f"  output: {{dir: {tmp_path}/runs, tensorboard: true}}\n"
                     f"parameters:\n  optimizer.lr: [0.1, 0.2]\n")
    out = CliRunner().invoke(app, ["sweep", str(sweep), "--quiet"])
    assert out.exit_code == 2, out.output
    assert "tensorboard" in out.output and "Traceback" not in out.output
    assert not list(tmp_path.glob("runs/sweep/trials/*"))


def test_a_failure_records_its_cause_in_summary_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync
    calls = {"n": 0}

    def full_once(fd: int) -> None:  # the disk is full for one write, then space frees up
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    class FullAfterEpoch1(Callback):
        def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
            monkeypatch.setattr(os, "fsync", full_once)

    snap = Snapshot()
    with pytest.raises(RunError, match="No space left on device"):
        train(experiment(RELIABILITY, tmp_path / "runs",
                         "rel"), callbacks=[snap, FullAfterEpoch1()])
    assert snap.run_dir is not None
    summary = json.loads((snap.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["reason"].startswith("stopped by an error: cannot write ")
    assert summary["reason"].endswith(": No space left on device")


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_again(
        tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data: {{dataset: iris}}\nmodel: {{hidden: [8]}}\n"
                   f"training: {{epochs: 2, device: cpu}}\noutput: {{dir: {tmp_path}/runs}}\n")
    run_dir = tmp_path / "runs" / "exp" / "20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_experiment(load_experiment(cfg)))
    (run_dir / ".lock").write_text("999999999\n")  # the pid of a process that is gone
    (run_dir / "metrics.csv").write_text("epoch,train_loss\n1,9.9\n")  # killed mid-save
    (run_dir / "checkpoints").mkdir()

    listed = CliRunner().invoke(app, ["compare", str(tmp_path / "runs"), "--csv",
                                      str(tmp_path / "c.csv")])
    assert listed.exit_code == 0, listed.output
    assert "incomplete" in (tmp_path / "c.csv").read_text()

    out = CliRunner().invoke(app, ["train", "--resume", str(run_dir)])
    assert out.exit_code == 0, out.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["last_epoch"] == 2
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "9.9" not in rows[1]  # header + epochs 1 and 2, from scratch
    load_checkpoint(run_dir / "checkpoints" / "last")

"""Sweeps that train (iris, tiny widths, 2–3 epochs): populations equal standalone runs,
interrupt and resume, local workers, pruning, poisoned configurations, the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import ConfigError, load_experiment
from fcnet_cli.engine.train.loop import train
from fcnet_cli.events import Callback, EpochMetrics, StopToken
from fcnet_cli.sweep.run import load_sweep, run_sweep
from fcnet_cli.sweep.store import open_store

runner = CliRunner()


def write_sweep(tmp_path: Path, parameters: dict[str, Any], epochs: int = 2,
                **spec: Any) -> Path:
    base = {"data": {"dataset": "iris"}, "model": {"hidden": [8]},
            "optimizer": {"name": "sgd", "lr": 0.1},
            "training": {"epochs": epochs, "batch_size": 16, "device": "cpu"},
            "output": {"dir": str(tmp_path / "runs")}}
    doc = {"name": "s", "base": base, "method": "grid", **spec, "parameters": parameters}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def trials_of(path: Path) -> list[optuna.trial.FrozenTrial]:
    return open_store(load_sweep(path)).trials()


def completed_once(path: Path) -> None:
    """Every grid point has exactly one COMPLETE trial and nothing is left RUNNING/WAITING."""
    sweep = load_sweep(path)
    trials = trials_of(path)
    done = Counter(t.user_attrs["key"] for t in trials
                   if t.state == optuna.trial.TrialState.COMPLETE)
    assert done == Counter(p.key for p in sweep.points)
    assert not [t for t in trials if t.state in (optuna.trial.TrialState.RUNNING,
                                                 optuna.trial.TrialState.WAITING)]


def test_cli_sweep_leaderboard_and_eval_of_the_best_checkpoint(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9],
                                  "regularization.type": ["none", "l2"],
                                  "regularization.strength": [1e-3]}, seeds=2)
    result = runner.invoke(app, ["sweep", str(path), "--json"])
    assert result.exit_code == 0, result.output
    board = json.loads(result.stdout)
    assert board["counts"]["done"] == board["total"] == 4
    ranked = [t["value"] for t in board["trials"]]
    assert ranked == sorted(ranked, reverse=True)
    best = board["best"]
    assert len(best["values"]) == 2 and best["std"] is not None
    sweep_dir = tmp_path / "runs" / "s"
    assert {p.name for p in sweep_dir.iterdir()} >= {"optuna.journal", "sweep.yaml",
                                                     "leaderboard.csv", "trials"}
    assert len(list((sweep_dir / "trials").iterdir())) == 8  # 4 trials × 2 seeds
    rows = list(csv.DictReader((sweep_dir / "leaderboard.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    for row, trial in zip(rows, board["trials"], strict=True):  # the other headline metrics
        assert 0 <= float(row["val_macro_f1_mean"]) <= 1
        assert float(row["val_balanced_accuracy_mean"]) == pytest.approx(
            trial["also"]["val_balanced_accuracy"])
    evaluated = runner.invoke(app, ["eval", best["checkpoint"], "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    again = runner.invoke(app, ["sweep", str(path)])  # resuming a finished sweep trains nothing
    assert again.exit_code == 0 and "trial" in again.stdout
    assert len(trials_of(path)) == 4


def test_a_member_equals_its_standalone_train_run(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.lr": [0.05, 0.2], "optimizer.momentum": [0.0, 0.9]},
                       epochs=3, seeds=2)
    result = run_sweep(load_sweep(path))
    trial = result.trials[-1]
    run_dir = Path(trial.run_dirs[1])  # a second seed, inside a population of 8
    alone = train(load_experiment(run_dir / "config.yaml", ["output.dir=" + str(tmp_path / "x")]))
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) == len(alone.history) == 3
    for row, m in zip(rows, alone.history, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert float(row[key]) == pytest.approx(getattr(m, key), rel=1e-4, abs=1e-5)


class StopAfterEpoch(Callback):
    def __init__(self, stop: StopToken, epoch: int) -> None:
        self.stop, self.epoch = stop, epoch

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if metrics[0].epoch >= self.epoch:
            self.stop.request("SIGINT")


def test_interrupted_sweep_resumes_without_duplicates(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.5, 0.9],
                                  "optimizer.lr": [0.05, 0.1]}, epochs=3, max_population=2)
    stop = StopToken()
    first = run_sweep(load_sweep(path), callbacks=[StopAfterEpoch(stop, 1)], stop=stop)
    assert first.interrupted
    assert first.counts["interrupted"] == 2 and first.counts["done"] == 0
    assert first.counts["running"] == 0
    failed = [t for t in trials_of(path) if t.state == optuna.trial.TrialState.FAIL]
    assert {t.user_attrs["status"] for t in failed} == {"interrupted"}
    assert all("SIGINT" in t.user_attrs["reason"] for t in failed)
    second = run_sweep(load_sweep(path))
    assert not second.interrupted and second.counts["done"] == 6
    completed_once(path)


class WaitForOtherWorker(Callback):
    """Holds this worker's first population until another worker has claimed a trial, so the
    test sees both workers at work however slowly the second one starts."""

    def __init__(self, path: Path) -> None:
        self.path, self.waited = path, False

    def on_run_start(self, start: Any) -> None:
        if self.waited:
            return
        self.waited = True
        me = f":{os.getpid()}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(not t.user_attrs.get("worker", me).endswith(me) for t in trials_of(self.path)):
                return
            time.sleep(0.2)
        raise AssertionError("the second worker never claimed a trial")


def test_two_local_workers_complete_every_trial_once(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9],
                                  "optimizer.lr": [0.02, 0.05, 0.1, 0.2]},
                       epochs=3, max_population=1)
    result = run_sweep(load_sweep(path), workers=2, callbacks=[WaitForOtherWorker(path)])
    assert result.counts["done"] == 8
    completed_once(path)
    assert len({t.user_attrs["worker"] for t in trials_of(path)}) == 2


def test_a_point_queued_twice_runs_once(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]})
    sweep = load_sweep(path)
    store = open_store(sweep)
    for point in [*sweep.points, sweep.points[0]]:  # as two racing remote workers might
        store.study.enqueue_trial(point.params, user_attrs={"key": point.key})
    result = run_sweep(sweep)
    statuses = sorted(t.user_attrs["status"] for t in trials_of(path))
    assert statuses == ["complete", "complete", "duplicate"]
    assert result.counts["done"] == 2 and len(result.trials) == 2
    completed_once(path)


def test_pruning_stops_all_members_of_a_trial(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]}, epochs=3, seeds=2)
    result = run_sweep(load_sweep(path), pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    assert result.counts["pruned"] == 2 and result.counts["done"] == 0
    for t in trials_of(path):
        assert t.state == optuna.trial.TrialState.PRUNED
        assert list(t.intermediate_values) == [1]
        assert t.user_attrs["epochs"] == [1, 1]
        for run_dir in t.user_attrs["run_dirs"]:
            summary = json.loads((Path(run_dir) / "summary.json").read_text())
            assert summary["status"] == "pruned" and summary["last_epoch"] == 1


def test_a_poisoned_configuration_fails_alone(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.lr": [0.05, 1.0e6, 0.1]}, seeds=2)
    result = run_sweep(load_sweep(path))
    assert result.counts["done"] == 2 and result.counts["failed"] == 1
    bad = next(t for t in result.trials if t.state == "fail")
    assert bad.params == {"optimizer.lr": 1.0e6}
    assert bad.status == "diverged" and "non-finite loss" in (bad.reason or "")
    assert result.best is not None and result.best.params["optimizer.lr"] != 1.0e6


def test_random_sweep_runs_its_budget_and_resumes_to_it(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.lr": {"log_uniform": [0.01, 0.3]},
                                  "regularization.type": ["none", "l2"],
                                  "regularization.strength": {"log_uniform": [1e-5, 1e-2]}},
                       method="random", trials=5, max_population=3)
    first = run_sweep(load_sweep(path))
    assert first.counts["done"] == 5
    again = run_sweep(load_sweep(path, ["trials=7"]))  # a bigger budget adds two trials
    assert again.counts["done"] == 7
    for t in again.trials:
        assert ("regularization.strength" in t.params) == (t.params["regularization.type"] == "l2")


def test_sigint_exits_130_and_leaves_no_trial_running(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]}, epochs=100000)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "sweep", str(path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        trials = tmp_path / "runs" / "s" / "trials"
        deadline = time.monotonic() + 120
        while not (trials.is_dir() and len(list(trials.glob("*/config.yaml"))) == 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "resume with: fcnet sweep" in err
    states = Counter((t.state.name, t.user_attrs.get("status")) for t in trials_of(path))
    assert states == {("FAIL", "interrupted"): 2}


def test_regression_sweep_ranks_by_rmse(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    base = {"task": "regression", "data": {"dataset": "diabetes"}, "model": {"hidden": [8]},
            "optimizer": {"name": "adam", "lr": 0.01},
            "training": {"epochs": 2, "batch_size": 32, "device": "cpu"},
            "output": {"dir": str(tmp_path / "runs")}}
    path.write_text(yaml.safe_dump({"name": "r", "base": base, "metric": "val_rmse",
                                    "parameters": {"loss.name": ["mse", "huber", "l1"]}}))
    sweep = load_sweep(path)
    assert sweep.direction == "minimize"
    result = run_sweep(sweep)
    values = [t.value for t in result.trials]
    assert len(values) == 3 and values == sorted(values)  # best (lowest RMSE) first
    assert all(v is not None and v > 10 for v in values)  # target units, not standard units
    assert set(result.trials[0].also) == {"val_mae", "val_r2"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "b", "base": {**base, "task": "classification",
                                                         "data": {"dataset": "iris"}},
                                   "metric": "val_rmse", "parameters": {}}))
    with pytest.raises(ConfigError, match=r"metric: val_rmse does not apply to the base "
                                          r"experiment's task \(classification\)"):
        load_sweep(bad)

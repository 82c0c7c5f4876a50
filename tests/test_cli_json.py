"""JSON for scripts (train, eval, sweep --top), `runs/NAME/latest`, CPU threads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.engine.train import cpus

runner = CliRunner()


def _tiny(tmp_path: Path, epochs: int = 2) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"dataset": "iris"}, "model": {"hidden": [8], "ensemble": 1},
        "training": {"epochs": epochs, "device": "cpu"},
        "output": {"dir": str(tmp_path / "runs")}}))
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Two runs of one experiment through `train --json` (the second with --threads 1)."""
    tmp_path = tmp_path_factory.mktemp("json")
    first = runner.invoke(app, ["train", str(_tiny(tmp_path)), "--json"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train", str(_tiny(tmp_path)), "--json", "--threads", "1",
                                 "--set", "training.epochs=3"])
    assert second.exit_code == 0, second.output
    return tmp_path, json.loads(first.stdout), json.loads(second.stdout)


def test_train_json_is_the_summary_with_the_checkpoint(two_runs: tuple[Path, dict, dict]
                                                       ) -> None:
    _, first, second = two_runs
    on_disk = json.loads((Path(first["run_dir"]) / "summary.json").read_text())
    assert {k: v for k, v in first.items() if k != "checkpoint"} == on_disk
    assert first["status"] == "completed" and first["last_epoch"] == 2
    assert first["best_epoch"] in (1, 2) and 0 <= first["best"]["val_accuracy"] <= 1
    assert set(first["test"]) >= {"accuracy", "loss", "n"}
    assert first["checkpoint"] == str(Path(first["run_dir"]) / "checkpoints" / "best")
    assert second["last_epoch"] == 3 and second["run_dir"] != first["run_dir"]


def test_threads_are_set_recorded_and_restored(two_runs: tuple[Path, dict, dict]) -> None:
    _, first, second = two_runs
    assert second["threads"] == 1
    assert first["threads"] == cpus.available_cpus()
    config = yaml.safe_load((Path(second["run_dir"]) / "config.yaml").read_text())
    assert config["training"]["threads"] == 1
    assert torch.get_num_threads() != 1 or cpus.available_cpus() == 1  # restored afterwards


def test_latest_stands_for_the_newest_run(two_runs: tuple[Path, dict, dict]) -> None:
    tmp_path, _, second = two_runs
    latest = tmp_path / "runs" / "tiny" / "latest"
    result = runner.invoke(app, ["eval", str(latest), "--json", "--split", "val"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["checkpoint"] == str(Path(second["run_dir"]) / "checkpoints" / "best")
    assert data["epoch"] == second["best_epoch"]
    k = len(data["classes"])
    assert data["macro"]["f1"] == pytest.approx(sum(data["f1"]) / k)
    assert data["macro"]["precision"] == pytest.approx(sum(data["precision"]) / k)
    assert data["macro"]["recall"] == pytest.approx(sum(data["recall"]) / k)
    assert data["accuracy"] == pytest.approx(second["best"]["val_accuracy"], abs=1e-6)
    plot = runner.invoke(app, ["plot", str(latest), "-o", str(tmp_path / "c.png")])
    assert plot.exit_code == 0 and (tmp_path / "c.png").stat().st_size > 0
    missing = runner.invoke(app, ["eval", str(tmp_path / "runs" / "none" / "latest")])
    assert missing.exit_code == 2 and "no runs in" in missing.stderr


def test_the_run_id_order_of_latest(tmp_path: Path) -> None:
    from fcnet_cli.engine.store.files import resolve_latest

    for name in ("20260101-120000", "20260101-120000-2", "20260101-120000-10",
                 "20251231-235959"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text("{}")
    assert resolve_latest(tmp_path / "latest").name == "20260101-120000-10"
    assert resolve_latest(tmp_path / "20251231-235959") == tmp_path / "20251231-235959"


def test_cgroup_quota_and_affinity_limit_the_threads(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path) == 3.0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda root=None: 1.5)
    assert cpus.available_cpus() == 2
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda root=None: None)
    assert cpus.available_cpus() == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert cpus.available_cpus() == 1


def test_threads_do_not_block_a_resume(two_runs: tuple[Path, dict, dict]) -> None:
    from fcnet_cli.config import load_experiment
    from fcnet_cli.engine.train.finish import check_resume_config

    tmp_path, first, _ = two_runs
    exp = load_experiment(_tiny(tmp_path), ["training.threads=3"])
    check_resume_config(Path(first["run_dir"]), exp)  # no error: threads are machine-only

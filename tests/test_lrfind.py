"""`fcnet lr-find`: both modes, the figure, the suggestion on a problem with a known lr range."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment
from fcnet_cli.engine.train.lrfind import log_space, lr_find, suggest_steepest

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
# Plain SGD (no momentum) on standardized digits, widths [32], batch 32: learning rates below
# ~0.01 barely lower the loss in an epoch and above ~3 the loss blows up (measured with this
# population: 1e-3 → val loss 2.27, 0.19 → 0.72, 2.7 → 3e7). A good lr lies in [0.03, 2].
GOOD = (0.03, 2.0)


def experiment(tmp_path: Path) -> Path:
    raw = {"data": {"dataset": "digits"}, "model": {"hidden": [32]},
           "optimizer": {"name": "sgd", "lr": 0.01},
           "training": {"epochs": 5, "batch_size": 32, "device": "cpu"},
           "output": {"dir": str(tmp_path / "runs"), "name": "lrf"}}
    path = tmp_path / "lrf.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_both_suggestions_fall_in_the_known_good_range(tmp_path: Path) -> None:
    exp = load_experiment(experiment(tmp_path))
    result = lr_find(exp, 1e-3, 30.0, num=7, epochs=2)
    assert result.ramp is not None and result.scan is not None
    assert result.ramp.suggestion is not None and result.scan.suggestion is not None
    assert GOOD[0] <= result.ramp.suggestion <= GOOD[1], result.ramp.suggestion
    assert GOOD[0] <= result.scan.suggestion <= GOOD[1], result.scan.suggestion
    assert result.scan.lrs == pytest.approx(log_space(1e-3, 30.0, 7))
    lows = result.scan.val_loss[0]
    assert lows > 2.0  # lr 1e-3: barely trained; the biggest lr diverged or blew up
    assert not math.isfinite(result.scan.val_loss[-1]) or result.scan.val_loss[-1] > lows
    ramp = result.ramp.lrs
    assert ramp[0] == pytest.approx(1e-3)
    assert all(b > a for a, b in zip(ramp, ramp[1:], strict=False))


def test_steepest_descent_point_of_a_constructed_curve() -> None:
    lrs = log_space(1e-4, 1.0, 41)
    # a smooth step centred at lr 1e-2: the fall is steepest there, the minimum comes after
    loss = [2.0 - 1.5 / (1 + math.exp(-4 * (math.log10(lr) + 2))) for lr in lrs]
    loss = [v + (8 * (math.log10(lr) + 0.5) ** 2 if lr > 10 ** -0.5 else 0.0)
            for v, lr in zip(loss, lrs, strict=True)]
    assert suggest_steepest(lrs, loss) == pytest.approx(1e-2, rel=0.01)


def test_cli_writes_one_png_a_table_and_a_ready_set(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lr-find", str(experiment(tmp_path)), "--min", "0.001",
                                 "--max", "10", "--num", "4", "--epochs", "1",
                                 "-o", str(tmp_path / "lr.png")])
    assert result.exit_code == 0, result.output
    assert "suggested: --set optimizer.lr=" in result.output
    assert "ramp" in result.output and "population" in result.output
    assert (tmp_path / "lr.png").read_bytes().startswith(PNG)
    saved = json.loads(next((tmp_path / "runs").rglob("lr_find.json")).read_text())
    value = float(result.output.rsplit("optimizer.lr=", 1)[1].split()[0])
    assert value == pytest.approx(saved["suggestion"], rel=1e-2)
    assert len(saved["population"]["lrs"]) == 4 and saved["ramp"]["lrs"]


def test_ramp_mode_alone_trains_no_population(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lr-find", str(experiment(tmp_path)), "--mode", "ramp",
                                 "--min", "0.001", "--max", "10"])
    assert result.exit_code == 0, result.output
    assert "learning rates trained as one population" not in result.output
    runs = [p.parent.name for p in (tmp_path / "runs").rglob("summary.json")]
    assert runs == ["ramp"]  # the ramp's own run directory, no population member


def ramp_losses(tmp_path: Path, *overrides: str) -> list[float]:
    out = tmp_path / "runs" / str(len(overrides))
    result = runner.invoke(app, ["lr-find", str(experiment(tmp_path)), "--mode", "ramp",
                                 "--min", "0.001", "--max", "10", "--set",
                                 f"output.dir={out}", *overrides])
    assert result.exit_code == 0, result.output
    return json.loads(next(out.rglob("lr_find.json")).read_text())["ramp"]["losses"]


def test_ramp_honours_class_weights(tmp_path: Path) -> None:
    plain = ramp_losses(tmp_path)
    # the same first batch and initial weights: only the loss's class weights differ
    weighted = ramp_losses(tmp_path, "--set", "loss.class_weights=[50,1,1,1,1,1,1,1,1,1]")
    assert abs(weighted[0] - plain[0]) > 1e-3, (weighted[0], plain[0])


def test_cli_finds_a_learning_rate_for_regression(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lr-find", "experiments/regression.yaml", "--set",
                                 f"output.dir={tmp_path}", "--num", "3", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "suggested: --set optimizer.lr=" in result.output
    saved = json.loads(next(tmp_path.rglob("lr_find.json")).read_text())
    assert saved["ramp"]["losses"] and all(map(math.isfinite, saved["ramp"]["losses"]))
    assert math.isfinite(saved["population"]["val_loss"][0])


@pytest.mark.parametrize("args, needle", [
    (["--min", "0"], "must be finite and > 0"),
    (["--min", "-1e-3"], "must be finite and > 0"),
    (["--min", "1", "--max", "0.1"], "--min (1) must be below --max (0.1)"),
    (["--num", "1"], "--num must be at least 2"),
    (["--mode", "grid"], "--mode must be one of"),
])
def test_bad_bounds_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["lr-find", str(experiment(tmp_path)), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output

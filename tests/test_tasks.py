"""Regression end to end, the majority-class warning, stored preprocessing used from another
directory, metrics as monitors, and `fcnet datasets`."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.catalog import builtin_datasets
from fcnet_cli.engine.data.load import load_data
from fcnet_cli.engine.evaluate import evaluate_checkpoint
from fcnet_cli.engine.train.loop import train

runner = CliRunner()


def test_regression_train_eval_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = Path(__file__).resolve().parents[1] / "experiments" / "regression.yaml"
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, ["train", str(exp), "--quiet", "--set", "training.epochs=3",
                              "--set", "output.dir=runs"])
    assert out.exit_code == 0, out.output
    run = Path(out.output.strip())
    summary = json.loads((run / "summary.json").read_text())
    test = summary["test"]
    assert test["task"] == "regression" and test["n"] == 89
    assert set(summary["best"]) >= {"val_rmse", "val_mae", "val_r2"}
    meta = json.loads((run / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["task"] == "regression" and meta["n_classes"] == 1
    assert meta["preprocessing"]["target"]["columns"] == ["target"]
    ev = runner.invoke(app, ["eval", str(run / "checkpoints" / "best"), "--json"])
    assert ev.exit_code == 0, ev.output
    metrics = json.loads(ev.output)["metrics"]
    assert metrics["rmse"] == pytest.approx(test["metrics"]["rmse"])
    assert metrics["residual_q05"] < metrics["residual_q50"] < metrics["residual_q95"]
    # RMSE in the target's units (disease progression, tens), not standard units (< 2)
    assert metrics["rmse"] > 20
    shown = runner.invoke(app, ["eval", str(run / "checkpoints" / "best")])
    assert "rmse" in shown.output and "residuals (truth − prediction)" in shown.output
    cmp = runner.invoke(app, ["compare", str(tmp_path / "runs"), "--metric", "val_rmse"])
    assert cmp.exit_code == 0 and "best val rmse" in cmp.output, cmp.output


def test_checkpoint_from_another_directory_gives_the_same_metrics(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    n = 150
    colour = rng.choice(["red", "green", "blue"], n)
    a = rng.normal(size=n)
    rows = ["a,colour,size,label"]
    for i in range(n):
        cell = "" if i % 9 == 0 else f"{a[i]:.3f}"
        rows.append(f"{cell},{colour[i]},{i % 4},{int(a[i] > 0) + (colour[i] == 'red')}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "exp.yaml").write_text(
        "data: {dataset: csv, path: data/t.csv, missing: median, missing_indicator: true, "
        "categorical: [size]}\nmodel: {hidden: [8]}\n"
        "training: {epochs: 4, device: cpu, early_stopping: {monitor: val_macro_f1}}\n"
        "output: {dir: runs}\n")
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, ["train", "exp.yaml", "--quiet"])
    assert out.exit_code == 0, out.output
    run = (tmp_path / out.output.strip()).resolve()
    test = json.loads((run / "summary.json").read_text())["test"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = evaluate_checkpoint(run / "checkpoints" / "best")
    assert again.loss == pytest.approx(test["loss"], rel=1e-6)
    assert again.accuracy == test["accuracy"]
    assert again.metrics["macro_f1"] == pytest.approx(test["metrics"]["macro_f1"])
    assert again.confusion == test["confusion"]


def test_majority_class_model_is_warned_about(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.05).astype(int)  # 5 % positives, features carry no signal
    lines = ["a,b,label"] + [f"{rng.normal():.3f},{rng.normal():.3f},{v}" for v in y]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: d.csv}}\nmodel: {{hidden: [4]}}\n"
                   f"optimizer: {{name: adam, lr: 0.05}}\ntraining: {{epochs: 5, device: cpu}}\n"
                   f"output: {{dir: {tmp_path}/runs}}\n")
    out = runner.invoke(app, ["train", str(cfg)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("warning:")]
    assert len(starts) == 1
    # the warning wraps at word boundaries: its continuation lines are indented
    block = [lines[starts[0]]]
    block += itertools.takewhile(lambda ln: ln.startswith("  "), lines[starts[0] + 1:])
    warning = " ".join(" ".join(block).split())
    assert "within 0.01 of the majority-class rate" in warning
    assert warning.endswith("or set loss.class_weights: balanced")
    run = next((tmp_path / "runs").glob("*/*"))
    ev = runner.invoke(app, ["eval", str(run / "checkpoints" / "best")])
    assert "majority-class rate" in ev.output
    balanced = runner.invoke(app, ["train", str(cfg), "--set", "loss.class_weights=balanced",
                                   "--set", "training.epochs=1"])
    assert balanced.exit_code == 0


def test_balanced_accuracy_can_be_monitored(tmp_path: Path) -> None:
    exp = Experiment.model_validate({
        "data": {"dataset": "iris"}, "model": {"hidden": [8], "ensemble": 1},
        "training": {"epochs": 3, "device": "cpu",
                     "early_stopping": {"monitor": "val_balanced_accuracy", "patience": 5}},
        "output": {"dir": str(tmp_path / "runs"), "name": "iris"}})
    r = train(exp)
    values = [m.metrics["val_balanced_accuracy"] for m in r.history]
    assert r.best is not None and r.best.metrics["val_balanced_accuracy"] == max(values)
    header = (Path(r.run_dir or "") / "metrics.csv").read_text().splitlines()[0]
    assert "val_balanced_accuracy" in header and "val_macro_f1" in header


def test_regression_metric_rejected_for_classification(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("training:\n  early_stopping:\n    monitor: val_rmse\n")
    out = runner.invoke(app, ["validate", str(cfg)])
    assert out.exit_code == 2
    assert "exp.yaml:3: training.early_stopping.monitor: val_rmse does not apply to task: " \
           "classification" in out.output


def test_datasets_lists_builtins_with_true_shapes() -> None:
    out = runner.invoke(app, ["datasets", "--json"])
    assert out.exit_code == 0
    listed = {d["name"]: d for d in json.loads(out.output)}
    assert listed["diabetes"]["task"] == "regression" and listed["digits"]["available"]
    for info in builtin_datasets():
        if info.source.startswith("scikit-learn"):
            task = "regression" if info.classes is None else None
            s = load_data(Experiment().data.model_copy(update={"dataset": info.name}), task=task)
            assert len(s.y_train) + len(s.y_val) + len(s.y_test) == info.rows
            assert s.n_features == info.features
            assert (s.n_classes or None) == info.classes
    table = runner.invoke(app, ["datasets", "--root", os.devnull])
    assert "mnist" in table.output and "no:" in table.output


def test_schema_names_the_registry_s_data_sets() -> None:
    """config.schema's `Dataset` names (a leaf: it cannot import the engine) are exactly the
    catalog's built-in sets, the synthetic ones and the file kinds; its regression sets are
    the catalog's."""
    from typing import get_args

    from fcnet_cli.config.schema import (
        FILE_DATASETS,
        REGRESSION_DATASETS,
        SYNTHETIC_DATASETS,
        Dataset,
    )
    from fcnet_cli.engine.data.catalog import SKLEARN, TORCHVISION

    assert sorted(get_args(Dataset)) == sorted(
        [*SKLEARN, *TORCHVISION, *SYNTHETIC_DATASETS, *FILE_DATASETS])
    assert sorted(REGRESSION_DATASETS) == sorted(n for n, s in SKLEARN.items()
                                                 if s.classes is None)

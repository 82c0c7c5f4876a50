"""The default ensemble: a YAML that leaves `model.ensemble` and the optimizer out trains
`ENSEMBLE` seeds as one population when an epoch of them is cheap (engine/train/defaults.py),
records why, resumes as it ran, and says under- and overfitting by the members' majority."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fcnet_cli.analysis.diagnose import diagnose_members
from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment, validate_experiment
from fcnet_cli.engine.train.defaults import (
    ENSEMBLE,
    DataFacts,
    auto_fields,
    ensemble_rule,
    n_weights,
    resolve_defaults,
)
from fcnet_cli.engine.train.finish import check_resume_config
from fcnet_cli.events import EpochMetrics
from fcnet_cli.serve.model import load_model

WINE = DataFacts(258, 13, 3, "classification")
MNIST = DataFacts(48_000, 784, 10, "classification")


def _exp(**sections: object) -> object:
    return validate_experiment({"data": {"dataset": "wine"}, **sections})


def test_a_minimal_experiment_gets_the_ensemble_with_its_reason() -> None:
    members, why = ensemble_rule(_exp(), WINE)  # type: ignore[arg-type, misc]
    assert members == ENSEMBLE == 8
    weights = (13 + 1) * 128 + (128 + 1) * 64 + (64 + 1) * 3
    assert n_weights(WINE, [128, 64]) == weights
    assert f"258 training rows × {weights} weights × 8" in why


def test_a_costly_epoch_keeps_one_model() -> None:
    members, why = ensemble_rule(_exp(), MNIST)  # type: ignore[arg-type, misc]
    assert members == 1 and why.startswith("one model: 8 members × 48000 training rows")


@pytest.mark.parametrize("sections", [
    {"model": {"ensemble": 1}},
    {"model": {"ensemble": {"size": 4}}},
    {"optimizer": {"lr": 0.01}},
    {"training": {"seeds": 3}},
])
def test_a_set_ensemble_optimizer_or_seed_group_is_left_alone(sections: dict) -> None:
    exp = _exp(**sections)
    assert ensemble_rule(exp, WINE) is None  # type: ignore[arg-type]
    assert "model.ensemble" not in auto_fields(exp)  # type: ignore[arg-type]
    out, reasons = resolve_defaults(exp, WINE, ensemble=True)  # type: ignore[arg-type]
    assert out.model.ensemble == exp.model.ensemble and "model.ensemble" not in reasons  # type: ignore[attr-defined]


def test_only_train_decides_it() -> None:
    """A population's members (sweeps, seed groups, an ensemble's members) are never turned
    into ensembles: without `ensemble=True` the rule leaves the field alone."""
    out, reasons = resolve_defaults(_exp(), WINE)  # type: ignore[arg-type]
    assert out.model.ensemble == 1 and "model.ensemble" not in reasons


def _table(tmp_path: Path, n: int = 150) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3))
    colour = [None if i % 11 == 0 else "red" if v > 0 else "blue"  # empty text cells
              for i, v in enumerate(x[:, 0])]
    pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "colour": colour,
                  "label": np.where(x[:, 1] + x[:, 2] > 0, "yes", "no")}).write_csv(
        tmp_path / "t.csv")
    return tmp_path / "t.csv"


def _minimal(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {_table(tmp_path).as_posix()!r}, "
                   f"target: label, missing: median}}\n{extra}"
                   f"output: {{dir: {(tmp_path / 'runs').as_posix()!r}}}\n")
    return cfg


def test_a_minimal_yaml_trains_and_serves_the_default_ensemble(tmp_path: Path) -> None:
    cfg = _minimal(tmp_path, "training: {epochs: 3}\n")
    res = CliRunner().invoke(app, ["train", "--json", str(cfg)])
    assert res.exit_code == 0, res.output
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ensemble"]["members"] == 8 and summary["status"] == "completed"
    assert sorted(p.name for p in (run_dir / "members").iterdir()) == \
        [f"seed-{s}" for s in range(8)]
    text = (run_dir / "config.yaml").read_text()
    assert "#   model.ensemble: auto: 8 seeds as one population" in text
    assert load_experiment(run_dir / "config.yaml").model.ensemble == 8
    model = load_model(run_dir)
    assert model.ensemble == 8
    rows = pl.read_csv(tmp_path / "t.csv").drop("label").head(5)
    assert model.predict_proba(rows).shape == (5, 2)
    # the same minimal YAML resumes the run: the ensemble is taken as the run decided it
    check_resume_config(run_dir, load_experiment(cfg))
    again = CliRunner().invoke(app, ["train", str(cfg), "--resume", str(run_dir)])
    assert again.exit_code == 2 and "every member already finished" in again.output


def test_validate_explain_data_shows_the_ensemble_reason(tmp_path: Path) -> None:
    cfg = _minimal(tmp_path)
    res = CliRunner().invoke(app, ["validate", "--explain", "--data", str(cfg)],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "model.ensemble = 8  auto: 8 seeds as one population" in res.output
    plain = CliRunner().invoke(app, ["validate", "--explain", str(cfg)], env={"COLUMNS": "200"})
    assert "model.ensemble = 1  auto: resolved from the data when training" in plain.output


def test_an_estimator_trains_one_model() -> None:
    from sklearn.datasets import load_iris

    from fcnet_cli.estimators import FCNetClassifier

    x, y = load_iris(return_X_y=True)
    est = FCNetClassifier(epochs=2).fit(x, y)
    assert est.model_.ensemble == 1 and est.result_.best_epoch is not None


def _history(falling: bool) -> list[EpochMetrics]:
    loss = [1.0 - 0.05 * e for e in range(10)] if falling else [1.0] + [0.3] * 9
    return [EpochMetrics(member=0, epoch=e + 1, train_loss=v, train_accuracy=0.8,
                         val_loss=v, val_accuracy=0.8, lr=0.01, seconds=0.0)
            for e, v in enumerate(loss)]


def test_the_members_majority_is_said() -> None:
    lines = diagnose_members([_history(True)] * 3 + [_history(False)])
    assert len(lines) == 1 and lines[0].startswith("3 of 4 members: still improving:")
    assert diagnose_members([_history(True)] + [_history(False)] * 3) == []
    assert diagnose_members([[], _history(True)]) == [
        "1 of 1 members: " + diagnose_members([_history(True)])[0].split(": ", 1)[1]]


def test_a_member_that_stops_is_named_by_its_seed() -> None:
    import io

    from rich.console import Console

    from fcnet_cli.cli.seeds import SeedLabels
    from fcnet_cli.display import PlainTrainDisplay
    from fcnet_cli.events import RunResult, RunStart

    out = io.StringIO()
    shown = SeedLabels(PlainTrainDisplay(Console(file=out, width=200)))
    dirs = [f"runs/m/1/members/seed-{s}" for s in (4, 5)]
    shown.on_run_start(RunStart(["m", "m"], list(dirs), 9, 2, 0, "cpu", 60, 20, 20, 3, 2))
    shown.on_member_end(1, RunResult("m", dirs[1], "early_stopped", [], 3, "val_loss",
                                     reason="no val_loss improvement for 5 epochs"))
    assert "seed 5: early_stopped (no val_loss improvement for 5 epochs)" in out.getvalue()

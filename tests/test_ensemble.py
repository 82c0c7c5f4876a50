"""`model.ensemble: N`: members vs standalone runs, the mean of probabilities, one checkpoint
served by predict / eval / load_model / export, resume, and what it cannot be combined with."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from factories import experiment
from messy_tables import CARS, MESSY, train_run
from test_export_messy import predict_and_export
from test_resume import StopAt
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.config import validate_experiment
from fcnet_cli.engine.store.checkpoint import load_checkpoint, load_train_state
from fcnet_cli.engine.train.ensemble import ensemble_members, member_dirs
from fcnet_cli.engine.train.loop import train
from fcnet_cli.errors import ConfigError
from fcnet_cli.events import StopToken
from fcnet_cli.serve.predict import raw_split

runner = CliRunner()
N, SEED = 3, 4


ENSEMBLE: dict[str, Any] = {
    # three members that early-stop at different epochs (best epochs 2, 5, 6)
    "data": {"dataset": "iris"}, "model": {"hidden": [8], "dropout": 0.2, "ensemble": N},
    "optimizer": {"lr": 0.2, "momentum": 0.9},
    "training": {"epochs": 8, "seed": SEED, "early_stopping": {"patience": 1}},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """(the ensemble's run directory, each member's standalone run directory)."""
    out = tmp_path_factory.mktemp("ens")
    exp = experiment(ENSEMBLE, out, "iris-ens")
    result = train(exp)
    assert result.status == "completed" and result.run_dir is not None
    alone = [train(m) for m in ensemble_members(exp)]
    assert all(r.run_dir is not None for r in alone)
    return Path(result.run_dir), [Path(str(r.run_dir)) for r in alone]


def test_member_k_is_the_standalone_run_with_seed_plus_k(trained: tuple[Path, list[Path]]
                                                         ) -> None:
    ens, alone = trained
    ckpt = load_checkpoint(ens)
    assert ckpt.meta["ensemble"] == N and ckpt.meta["member_seeds"] == [4, 5, 6]
    epochs = []
    for k, run in enumerate(alone):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["training"]["seed"] == SEED + k and cfg["model"]["ensemble"] == 1
        own = load_checkpoint(run)
        epochs.append(own.meta["epoch"])
        for key, value in own.state_dict.items():
            torch.testing.assert_close(ckpt.state_dict[f"members.{k}.{key}"], value,
                                       rtol=1e-5, atol=1e-6)
    assert ckpt.meta["member_epochs"] == epochs
    assert len(set(epochs)) == N  # each member stopped on its own, its best state kept
    summary = json.loads((ens / "summary.json").read_text())
    assert summary["ensemble"]["seeds"] == [4, 5, 6]
    assert summary["ensemble"]["dirs"] == ["members/seed-4", "members/seed-5", "members/seed-6"]
    assert summary["ensemble"]["best_epoch"] == epochs
    assert summary["ensemble"]["status"] == ["early_stopped"] * N


def test_probabilities_are_the_mean_of_the_members(trained: tuple[Path, list[Path]]) -> None:
    ens, alone = trained
    model = load_model(ens)
    x = raw_split(model, "val")
    want = np.mean([load_model(run).predict_proba(x) for run in alone], axis=0)
    got = model.predict_proba(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert (model.predict(x) == model.classes_[want.argmax(1)]).all()
    assert model.ensemble == N and len(model.member_modules) == N


def test_predict_eval_and_load_model_agree(trained: tuple[Path, list[Path]]) -> None:
    ens, alone = trained
    model = load_model(ens)
    result = runner.invoke(app, ["predict", str(ens), "--split", "test", "--proba"])
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(io.StringIO(result.stdout))
    proba = frame.select([f"proba_{c}" for c in model.classes_]).to_numpy()
    np.testing.assert_allclose(proba, model.predict_proba(raw_split(model, "test")), atol=1e-6)
    result = runner.invoke(app, ["eval", str(ens), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    pred = model.predict(raw_split(model, "test"))
    truth = frame["prediction"].to_numpy()  # predict's labels == load_model's
    assert (pred == truth).all()
    summary = json.loads((ens / "summary.json").read_text())
    assert got["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    members = [json.loads((run / "summary.json").read_text())["test"]["accuracy"]
               for run in alone]
    spread = got["members"]["accuracy"]
    assert spread["values"] == pytest.approx(members)
    assert spread["mean"] == pytest.approx(np.mean(members))
    assert spread["std"] == pytest.approx(np.std(members, ddof=1))
    text = runner.invoke(app, ["eval", str(ens)]).output
    assert f"members ({N}, mean ± std):" in text and "accuracy" in text


def test_pt2_export_averages_inside_the_program(trained: tuple[Path, list[Path]],
                                                tmp_path: Path) -> None:
    ens, _ = trained
    out = tmp_path / "ens.pt2"
    result = runner.invoke(app, ["export", str(ens), "--format", "pt2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(ens)
    x = model.features(raw_split(model, "test"))
    program = torch.export.load(str(out)).module()
    got = program(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, model.proba_of(x), atol=1e-6)
    sidecar = json.loads(out.with_name("ens.pt2.json").read_text())
    assert sidecar["ensemble"] == N and "mean" in sidecar["outputs"][0]["values"]


def test_onnx_export_of_an_ensemble_matches_predict_on_a_messy_table(tmp_path: Path) -> None:
    """Penguins: text columns with empty cells, a numeric column with holes, an unseen
    category; the graph runs the members and averages their probabilities."""

    kind = MESSY["penguins"]
    run = train_run(tmp_path, kind, model="hidden: [8], ensemble: 3")
    expected, sidecar, (proba, logits) = predict_and_export(run, tmp_path)
    assert sidecar["ensemble"] == 3
    assert sidecar["outputs"][1]["values"].startswith("log of the members' mean probability")
    assert proba.shape == expected.shape == (24, 3)
    assert float(np.abs(proba - expected).max()) <= 1e-5
    assert float(np.abs(np.exp(logits) - expected).max()) <= 1e-5


@pytest.mark.parametrize("kind", ["independent", "shared"])
def test_regression_ensemble_predicts_the_mean_of_its_members(tmp_path: Path, kind: str) -> None:
    run = train_run(tmp_path, CARS, model=f"hidden: [8], ensemble: 2, ensemble_kind: {kind}")
    model = load_model(run.run_dir)
    x = model.features(CARS.frame(30, 5))
    with torch.no_grad():
        members = [model.target.unstandardize(m(torch.from_numpy(x)).numpy())
                   for m in model.member_modules]
    np.testing.assert_allclose(model.predict(CARS.frame(30, 5)), np.mean(members, 0)[:, 0],
                               rtol=1e-5, atol=1e-4)
    result = runner.invoke(app, ["eval", str(run.run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["members"]) == {"loss", "rmse", "mae", "r2"}
    result = runner.invoke(app, ["eval", str(run.run_dir), "--data", str(run.csv), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert len(got["members"]["rmse"]["values"]) == 2
    assert got["metrics"]["rmse"] <= max(got["members"]["rmse"]["values"])  # mean: no worse


def test_resume_of_an_interrupted_ensemble_is_exact(tmp_path: Path) -> None:
    full = train(experiment(ENSEMBLE, tmp_path, "full", model={"ensemble": 2}))
    stop = StopToken()
    exp = experiment(ENSEMBLE, tmp_path, "resumed", model={"ensemble": 2})
    first = train(exp, callbacks=[StopAt(stop, 2, 3)], stop=stop)
    assert first.status == "interrupted" and first.run_dir is not None
    assert not (Path(first.run_dir) / "checkpoints" / "best").exists()
    second = train(exp, resume=Path(first.run_dir))
    assert second.status == "completed" and second.run_dir == first.run_dir
    a, b = Path(str(full.run_dir)), Path(str(second.run_dir))
    wa, wb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []
    for da, db in zip(member_dirs(a, exp), member_dirs(b, exp), strict=True):
        ha = load_train_state(da / "checkpoints" / "last")["history"]
        hb = load_train_state(db / "checkpoints" / "last")["history"]
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in ha] == \
            [{k: v for k, v in r.items() if k != "seconds"} for r in hb]


def test_ensemble_with_seeds_is_refused_with_one_line(tmp_path: Path) -> None:
    raw = experiment(ENSEMBLE, tmp_path, "iris-ens").model_dump(mode="json")
    raw["training"]["seeds"] = 2
    with pytest.raises(ConfigError) as err:
        validate_experiment(raw, "e.yaml")
    assert any("model.ensemble: 3 members cannot be combined with training.seeds: 2" in p
               for p in err.value.problems)
    path = tmp_path / "e.yaml"
    exp = experiment(ENSEMBLE, tmp_path, "iris-ens")
    path.write_text(yaml.safe_dump(exp.model_dump(mode="json")))
    result = runner.invoke(app, ["train", str(path), "--seeds", "2"])
    assert result.exit_code == 2
    assert "cannot be combined with training.seeds" in result.output
    assert not (tmp_path / "iris-ens").exists()


def test_schema_documents_the_field() -> None:
    from fcnet_cli.config import describe_schema

    row = next(r for r in describe_schema() if r[0] == "model.ensemble")
    assert row[1] == "int or mapping"
    assert row[2] == "1" and "mean of their probabilities" in row[3]
    with pytest.raises(ConfigError):
        validate_experiment({"model": {"ensemble": 0}}, "e.yaml")


def test_cli_trains_an_ensemble_and_prints_the_members(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    exp = experiment(ENSEMBLE, tmp_path / "runs", "iris-ens", model={"ensemble": 2},
                     training={"epochs": 2})
    path.write_text(yaml.safe_dump(exp.model_dump(mode="json")))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    assert "seed 4" in result.output and "seed 5" in result.output
    assert "members' test" in result.output and "±" in result.output
    result = runner.invoke(app, ["train", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ensemble"]["members"] == 2 and Path(data["checkpoint"]).is_dir()


@pytest.mark.parametrize("ensemble", ["4", "{size: 4, select: greedy}"])
def test_a_sweep_refuses_an_ensemble_base(tmp_path: Path, ensemble: str) -> None:
    from fcnet_cli.sweep.load import load_sweep

    spec = tmp_path / "s.yaml"
    spec.write_text(f"base:\n  data: {{dataset: iris}}\n  model: {{ensemble: {ensemble}}}\n"
                    "parameters:\n  optimizer.lr: [0.01, 0.1]\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(spec)
    assert any("a sweep trains single models" in p for p in err.value.problems)


def test_sweep_joins_its_top_trials_of_the_best_layout(tmp_path: Path) -> None:
    base = {"data": {"dataset": "iris"}, "model": {"hidden": [8]},
            "optimizer": {"name": "adam", "lr": 0.01},
            "training": {"epochs": 3, "batch_size": 16, "device": "cpu"},
            "output": {"dir": str(tmp_path / "runs")}}
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "base": base, "method": "grid", "parameters": {
        "optimizer.lr": [0.003, 0.01, 0.03], "model.hidden": [[8], [4]]}}, sort_keys=False))
    result = runner.invoke(app, ["sweep", str(spec), "--json", "--ensemble", "2"])
    assert result.exit_code == 0, result.output
    board = json.loads(result.stdout)
    best_hidden = board["best"]["params"]["model.hidden"]
    same = [t for t in board["trials"] if t["params"]["model.hidden"] == best_hidden]
    assert "ensemble of trials" in result.stderr
    (ens,) = list((tmp_path / "runs" / "s" / "ensembles" / "top2").iterdir())
    summary = json.loads((ens / "summary.json").read_text())
    assert [s["trial"] for s in summary["ensemble"]["sources"]] == [t["number"]
                                                                    for t in same[:2]]
    model = load_model(ens)
    x = raw_split(model, "test")
    want = np.mean([load_model(t["checkpoint"]).predict_proba(x) for t in same[:2]], axis=0)
    np.testing.assert_allclose(model.predict_proba(x), want, atol=1e-6)
    assert model.ensemble == 2 and summary["test"]["accuracy"] is not None

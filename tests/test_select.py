"""`model.ensemble: {size, select: greedy}`: greedy selection against hand-computed cases,
the distribution, the validation split alone choosing, the checkpoint of the selected
members, serving (predict / eval / load_model / ONNX) and bad configs."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from messy_tables import MESSY, train_run
from serve_data import usage_error
from test_export_messy import predict_and_export
from test_resume import StopAt
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.config import Experiment, validate_experiment
from fcnet_cli.engine.data.load import load_data
from fcnet_cli.engine.store.checkpoint import load_checkpoint
from fcnet_cli.engine.train.diversity import draw_member, draw_members
from fcnet_cli.engine.train.loop import train
from fcnet_cli.engine.train.select import greedy_select
from fcnet_cli.errors import ConfigError
from fcnet_cli.events import StopToken
from fcnet_cli.serve.predict import raw_split

runner = CliRunner()

# three members' validation probabilities on two rows of two classes (truth: 0, then 1)
A = [[0.9, 0.1], [0.6, 0.4]]
B = [[0.5, 0.5], [0.1, 0.9]]
C = [[0.5, 0.5], [0.5, 0.5]]
Y = np.array([0, 1])


def _log_loss(p0: float, p1: float) -> float:
    """The mean log loss of two rows whose true classes got probabilities p0 and p1."""
    return -(math.log(p0) + math.log(p1)) / 2


def test_greedy_selection_matches_the_hand_computed_rounds() -> None:
    # round 1: B alone (0.3992) beats A (0.5108) and C (0.6931)
    # round 2: B+A = (0.7, 0.65) 0.3937 beats B+B 0.3992 and B+C 0.5249
    # round 3: A+2B = (0.6333, 0.7333) 0.3835 beats 2A+B 0.4168
    # round 4: A+3B = (0.6, 0.775) 0.3829 beats 2A+2B 0.3937
    # round 5: A+4B 0.3839 beats 2A+3B 0.3861; both worse than 0.3829, and rounds go on
    # round 6: 2A+4B 0.3835 (as A+2B) beats A+5B 0.3856
    # round 7: 2A+5B = (4.3/7, 5.3/7) 0.38275, the lowest of all ten rounds: the kept prefix
    chosen = greedy_select(np.array([A, B, C]), Y, rounds=10)
    assert chosen.order == [1, 0, 1, 1, 1, 0, 1]
    assert chosen.weights == pytest.approx({0: 2 / 7, 1: 5 / 7})
    want = [_log_loss(0.5, 0.9), _log_loss(0.7, 0.65), _log_loss(1.9 / 3, 2.2 / 3),
            _log_loss(0.6, 0.775), _log_loss(2.9 / 5, 4.0 / 5), _log_loss(1.9 / 3, 2.2 / 3),
            _log_loss(4.3 / 7, 5.3 / 7)]
    assert chosen.scores == pytest.approx(want, abs=1e-12)
    four = greedy_select(np.array([A, B, C]), Y, rounds=4)  # the best of four rounds
    assert four.order == [1, 0, 1, 1] and four.weights == {0: 0.25, 1: 0.75}
    five = greedy_select(np.array([A, B, C]), Y, rounds=5)  # round 5 is worse: not kept
    assert five.order == [1, 0, 1, 1]
    two = greedy_select(np.array([A, B, C]), Y, rounds=2)  # a fixed number of rounds
    assert two.order == [1, 0] and two.weights == {0: 0.5, 1: 0.5}


def test_regression_selection_minimizes_the_rmse_of_the_mean() -> None:
    # targets (0, 2): A = (1, 1) has RMSE 1; A+C = (0.5, 2.5) 0.5; A+B+C = (1/3, 5/3) 1/3
    preds = np.array([[[1.0], [1.0]], [[0.0], [0.0]], [[0.0], [4.0]]])
    chosen = greedy_select(preds, np.array([[0.0], [2.0]]), rounds=3, regression=True)
    assert chosen.order == [0, 2, 1]
    assert chosen.weights == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    assert chosen.scores == pytest.approx([1.0, 0.5, 1 / 3])


def test_greedy_selection_refuses_empty_input() -> None:
    with pytest.raises(ValueError, match="rounds"):
        greedy_select(np.zeros((0, 2, 2)), Y, rounds=3)
    with pytest.raises(ValueError, match="rounds"):
        greedy_select(np.array([A]), Y, rounds=0)


def _exp(out: Path, size: int = 5, rounds: int | None = None, seed: int = 3) -> Experiment:
    ensemble: dict = {"size": size, "select": "greedy"}
    if rounds is not None:
        ensemble["rounds"] = rounds
    return Experiment.model_validate({
        "data": {"dataset": "iris"}, "model": {"hidden": [8], "ensemble": ensemble},
        "training": {"epochs": 6, "batch_size": 16, "seed": seed, "device": "cpu"},
        "output": {"dir": str(out), "name": "iris-sel"}})


def test_the_distribution_is_drawn_from_the_seed_and_documented_ranges(tmp_path: Path) -> None:
    exp = _exp(tmp_path, size=40)
    members = draw_members(exp)
    assert members[0].model.hidden == [8] and members[0].optimizer == exp.optimizer
    assert [m.training.seed for m in members] == list(range(3, 43))
    assert all(m.model.ensemble == 1 for m in members)
    assert draw_members(exp) == members  # reproducible
    assert draw_member(_exp(tmp_path, size=3), 2) == members[2]  # size does not move draws
    assert draw_members(_exp(tmp_path, size=40, seed=4))[1] != members[1]
    rest = members[1:]
    lr = exp.optimizer.lr
    assert all(lr / 3 <= m.optimizer.lr <= lr * 3 for m in rest)
    assert {tuple(m.model.hidden) for m in rest} == {(4,), (8,), (16,)}
    assert all(0 <= m.model.dropout <= 0.3 and 0 <= m.loss.label_smoothing <= 0.2
               for m in rest)
    decays = [m.optimizer.weight_decay for m in rest]
    assert 0 in decays and all(d == 0 or 1e-5 <= d <= 1e-2 for d in decays)


@pytest.fixture(scope="module")
def selected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sel")
    result = train(_exp(out, rounds=2))
    assert result.status == "completed" and result.run_dir is not None
    return Path(result.run_dir)


def test_the_checkpoint_holds_only_the_selected_members(selected: Path) -> None:
    selection = json.loads((selected / "summary.json").read_text())["ensemble"]["selection"]
    assert selection["split"] == "val" and selection["metric"] == "log_loss"
    picked = [m["member"] for m in selection["members"]]
    assert 1 <= len(picked) <= 2 < 5  # rounds: 2 of 5 members
    ckpt = load_checkpoint(selected / "checkpoints" / "best")
    assert ckpt.meta["ensemble"] == len(picked)
    assert ckpt.meta["member_weights"] == [m["weight"] for m in selection["members"]]
    assert ckpt.meta["member_seeds"] == [3 + k for k in picked]
    assert {k.split(".")[1] for k in ckpt.state_dict} == {str(j) for j in range(len(picked))}
    for j, k in enumerate(picked):  # member j of the checkpoint is member k's best state
        own = load_checkpoint(selected / "members" / f"seed-{3 + k}" / "checkpoints" / "best")
        assert ckpt.meta["member_models"][j]["hidden"] == own.meta["config"]["model"]["hidden"]
        for key, value in own.state_dict.items():
            assert torch.equal(ckpt.state_dict[f"members.{j}.{key}"], value)
    model = load_model(selected)
    assert model.ensemble == len(picked) and model.member_weights == ckpt.meta["member_weights"]


def test_selection_never_looks_at_the_test_split(tmp_path: Path) -> None:
    exp = _exp(tmp_path)
    data = load_data(exp.data)
    g = torch.Generator().manual_seed(0)
    other = dataclasses.replace(data, x_test=torch.randn(data.x_test.shape, generator=g),
                                y_test=data.y_test.flip(0))
    chosen = []
    for splits in (data, other):
        result = train(exp, data=splits)
        assert result.run_dir is not None
        summary = json.loads((Path(result.run_dir) / "summary.json").read_text())
        chosen.append(summary["ensemble"]["selection"])
    assert chosen[0] == chosen[1]


@pytest.mark.parametrize("kind", ["piecewise_linear", "periodic"])
def test_selection_scores_members_on_the_inputs_they_trained_on(tmp_path: Path,
                                                                kind: str) -> None:
    """With a numerical embedding the members' network takes the embedded inputs: selection
    must score them on those (a raw validation split does not even fit the first layer)."""
    exp = _exp(tmp_path, size=3, rounds=3)
    exp = exp.model_copy(update={"model": exp.model.model_copy(
        update={"num_embeddings": kind})})
    result = train(exp)
    assert result.status == "completed" and result.run_dir is not None
    run_dir = Path(result.run_dir)
    selection = json.loads((run_dir / "summary.json").read_text())["ensemble"]["selection"]
    model = load_model(run_dir)
    assert model.ensemble == len(selection["members"])
    assert model.spec.prep.embedding is not None  # served with the members' embedding
    from sklearn.datasets import load_iris

    probs = model.predict_proba(load_iris().data[:10])
    assert probs.shape == (10, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_predict_eval_load_model_and_onnx_agree_on_a_messy_table(tmp_path: Path) -> None:
    """Penguins: text columns with empty cells and a numeric column with holes; the
    selected members differ in width and weight."""

    kind = MESSY["penguins"]
    run = train_run(tmp_path, kind, epochs=4,
                    model="hidden: [8], ensemble: {size: 8, select: greedy, rounds: 12}")
    ckpt = load_checkpoint(run.run_dir / "checkpoints" / "best")
    widths = {tuple(m["hidden"]) for m in ckpt.meta["member_models"]}
    weights = ckpt.meta["member_weights"]
    assert len(widths) > 1 and len(set(weights)) > 1, (widths, weights)
    model = load_model(run.run_dir)  # load_model: the weighted mean of the members
    x = raw_split(model, "test")
    proba = model.predict_proba(x)
    members = [torch.softmax(m(torch.from_numpy(x)), -1).detach().numpy()
               for m in model.member_modules]
    weighted = sum(w * p for w, p in zip(weights, members, strict=True))
    np.testing.assert_allclose(proba, weighted, rtol=0, atol=1e-5)
    result = runner.invoke(app, ["predict", str(run.run_dir), "--split", "test", "--proba"])
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(io.StringIO(result.stdout))
    np.testing.assert_allclose(frame.select([f"proba_{c}" for c in model.classes_]).to_numpy(),
                               proba, rtol=0, atol=1e-5)
    result = runner.invoke(app, ["eval", str(run.run_dir), "--json"])  # eval: its log loss
    assert result.exit_code == 0, result.output
    y = load_data(model.experiment.data, task=model.experiment.task).y_test.numpy()
    loss = -np.mean(np.log(proba[np.arange(len(y)), y]))
    assert json.loads(result.stdout)["loss"] == pytest.approx(loss, abs=1e-5)
    # new rows, raw text: predict vs the graph
    predicted, sidecar, (onnx_proba, _) = predict_and_export(run, tmp_path)
    assert "weighted mean" in sidecar["outputs"][0]["values"]
    assert float(np.abs(onnx_proba - predicted).max()) <= 1e-5
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["ensemble"]["selection"]["split"] == "val"


def test_resume_of_an_interrupted_selected_ensemble_is_exact(tmp_path: Path) -> None:
    """Stopped inside the first width's population: the widths not started train on resume,
    and the selection and checkpoint equal an uninterrupted run's."""
    exp = _exp(tmp_path / "full")
    assert len({tuple(m.model.hidden) for m in draw_members(exp)}) > 1
    full = train(exp)
    stop = StopToken()
    resumed = _exp(tmp_path / "resumed")
    first = train(resumed, callbacks=[StopAt(stop, 2, 3)], stop=stop)
    assert first.status == "interrupted" and first.run_dir is not None
    assert not (Path(first.run_dir) / "checkpoints" / "best").exists()
    second = train(resumed, resume=Path(first.run_dir))
    assert second.status == "completed"
    a, b = (Path(str(r.run_dir)) for r in (full, second))
    sel = [json.loads((d / "summary.json").read_text())["ensemble"]["selection"] for d in (a, b)]
    assert sel[0]["members"] == sel[1]["members"] and sel[0]["scores"] == sel[1]["scores"]
    wa, wb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize(("value", "needles"), [
    ("{size: 4, sellect: greedy}", ("model.ensemble", "sellect: unknown key",
                                    "did you mean 'select'")),
    ("{size: 4, select: best}", ("model.ensemble", "select", "'none' or 'greedy'")),
    ("{size: 0, select: greedy}", ("model.ensemble", "size", "greater than or equal to 1")),
    ("{size: 4, rounds: 3}", ("model.ensemble", "rounds applies to select: greedy only")),
    ("{size: 4, select: greedy, rounds: 0}", ("model.ensemble", "rounds")),
    ("0", ("model.ensemble", "1..256")),
    ("true", ("model.ensemble", "a number of members or a mapping")),
])
def test_bad_selection_configs_exit_2_with_one_line(tmp_path: Path, value: str,
                                                    needles: tuple[str, ...]) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(f"data: {{dataset: iris}}\nmodel:\n  ensemble: {value}\n")
    for command in ("validate", "train"):
        usage_error(runner.invoke(app, [command, str(path)]), "e.yaml:3", *needles)
    assert not (tmp_path / "runs").exists()


def test_a_selected_ensemble_with_seeds_is_refused(tmp_path: Path) -> None:
    raw = {"model": {"ensemble": {"size": 4, "select": "greedy"}}, "training": {"seeds": 2}}
    with pytest.raises(ConfigError) as err:
        validate_experiment(raw, "e.yaml")
    assert any("model.ensemble: 4 members cannot be combined with training.seeds: 2" in p
               for p in err.value.problems)
    # a sweep's refusal of an ensemble base, both forms: tests/test_ensemble.py


def test_validate_explain_shows_the_selection_fields(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("data: {dataset: iris}\nmodel:\n  ensemble: {size: 8, select: greedy}\n")
    result = runner.invoke(app, ["validate", str(path), "--explain"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "model.ensemble.size = 8" in text and "model.ensemble.select = greedy" in text
    assert "model.ensemble.rounds = null" in text and "greedy selection" in text
    # the mapping's own row names its fields and where they came from, not an empty value
    assert f"model.ensemble = {{size, select, rounds}} from {path}:3" in text

"""report.py, plots.py, importances.py and the `compare` / `plot` commands, on small real runs."""

import csv
import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.numpy import load_file
from typer.testing import CliRunner

from fcnet_cli.analysis import compare as report
from fcnet_cli.analysis.importances import load_study, param_importances, study_from_runs
from fcnet_cli.cli import app
from fcnet_cli.config import Experiment, validate_experiment
from fcnet_cli.display import render_comparison, render_importances
from fcnet_cli.engine.train.loop import train, train_population
from fcnet_cli.engine.train.population import Population
from fcnet_cli.engine.train.tensorboard import available, scalar_tags
from fcnet_cli.events import EpochMetrics, LayerStats

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _exp(reg: str = "none", strength: float = 0.0, seed: int = 0, epochs: int = 4,
         dataset: str = "iris", hidden: list[int] | None = None, out: Path | None = None,
         lr: float = 0.05):
    return validate_experiment({
        "data": {"dataset": dataset}, "model": {"hidden": hidden or [8]},
        "regularization": {"type": reg, "strength": strength},
        "optimizer": {"lr": lr, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": 16, "seed": seed, "device": "cpu"},
        "output": {"name": reg, "dir": str(out or "runs")}})


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three members of one layout (a sweep-like folder: trials/<name>/)."""
    root = tmp_path_factory.mktemp("sweep")
    exps = [_exp("none"), _exp("l1", 1e-3), _exp("l2", 1e-3)]
    train_population(exps, run_dirs=[root / "trials" / e.name for e in exps])
    return root


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG)


# ---------------------------------------------------------------- discovery and the table


def test_runs_are_found_recursively_and_named_by_relative_path(sweep_dir: Path) -> None:
    runs = report.load_runs([sweep_dir])
    assert sorted(r.name for r in runs) == ["l1", "l2", "none"]
    assert all(r.in_features == 4 and r.n_classes == 3 for r in runs)
    assert all(len(r.metrics) == 4 for r in runs)
    single = report.load_runs([sweep_dir / "trials" / "l1"])
    assert [r.name for r in single] == ["l1"]


def test_compare_lists_differing_params_and_sorts_by_the_metric(sweep_dir: Path) -> None:
    runs = report.load_runs([sweep_dir])
    table = report.compare(runs, "val_accuracy")
    assert table.params == ["regularization.strength", "regularization.type"]
    accs = [row["best_val_accuracy"] for row in table.rows]
    assert accs == sorted(accs, reverse=True)
    by_loss = report.compare(runs, "val_loss")
    losses = [row["best_val_loss"] for row in by_loss.rows]
    assert losses == sorted(losses)
    assert "test_loss" in by_loss.columns
    for row, run in ((r, next(x for x in runs if x.name == r["name"])) for r in table.rows):
        assert row["best_epoch"] == run.summary["best_epoch"]
        assert row["test_accuracy"] == pytest.approx(run.summary["test"]["accuracy"])
        assert row["gap_accuracy"] == pytest.approx(run.summary["gap_at_best"]["accuracy"])


def test_compare_command_writes_csv_markdown_and_png(sweep_dir: Path, tmp_path: Path) -> None:
    out_csv, out_md, out_png = tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "c.png"
    result = runner.invoke(app, ["compare", str(sweep_dir), "--csv", str(out_csv),
                                 "--markdown", str(out_md), "--plot", str(out_png)])
    assert result.exit_code == 0, result.output
    for name in ("none", "l1", "l2", "best val acc", "3 runs"):
        assert name in result.stdout
    with out_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for col in ("name", "regularization.type", "best_val_accuracy", "test_accuracy",
                "best_epoch", "gap_accuracy", "sparsity", "weight_norm", "seconds", "status"):
        assert col in rows[0], col
    assert {r["regularization.type"] for r in rows} == {"none", "l1", "l2"}
    assert all(0 <= float(r["sparsity"]) <= 1 and float(r["weight_norm"]) > 0 for r in rows)
    md = out_md.read_text().splitlines()
    assert len(md) == 5 and md[0].startswith("| run | regularization.strength |")
    assert _is_png(out_png)


def test_compare_accepts_several_run_dirs(sweep_dir: Path) -> None:
    dirs = [str(sweep_dir / "trials" / n) for n in ("l1", "l2")]
    result = runner.invoke(app, ["compare", *dirs, "--metric", "val_loss"])
    assert result.exit_code == 0, result.output
    assert "2 runs, sorted by best val_loss" in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["compare", "/no/such/dir"], "no such directory"),
    (["plot", "/no/such/dir"], "no such directory"),
    (["compare", "{empty}"], "no run directories"),
    (["compare", "{sweep}", "--plot", "x.jpg"], "PNG"),
    (["compare", "{sweep}", "--metric", "test_accuracy"], "test_accuracy"),
])
def test_compare_and_plot_usage_errors(sweep_dir: Path, tmp_path: Path, args: list[str],
                                       needle: str) -> None:
    args = [a.format(empty=tmp_path, sweep=sweep_dir) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


# ---------------------------------------------------------------- figures


def test_plot_command_draws_a_run(tmp_path: Path) -> None:
    run = train(_exp(epochs=3, out=tmp_path / "runs"))
    assert run.run_dir is not None
    result = runner.invoke(app, ["plot", run.run_dir])
    assert result.exit_code == 0, result.output
    assert _is_png(Path(run.run_dir) / "curves.png")
    out = tmp_path / "fig" / "run.png"
    assert runner.invoke(app, ["plot", run.run_dir, "-o", str(out)]).exit_code == 0
    assert _is_png(out)


def test_plot_command_draws_a_sweep(sweep_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.png"
    result = runner.invoke(app, ["plot", str(sweep_dir), "-o", str(out), "--metric", "val_loss"])
    assert result.exit_code == 0, result.output
    assert _is_png(out)


def test_swept_params_come_from_sweep_yaml(sweep_dir: Path, tmp_path: Path) -> None:
    runs = report.load_runs([sweep_dir])
    assert report.swept_params(sweep_dir, runs) == ["regularization.strength",
                                                    "regularization.type"]
    (tmp_path / "sweep.yaml").write_text("parameters:\n  regularization.type: [none, l1]\n")
    assert report.swept_params(tmp_path, runs) == ["regularization.type"]


# ---------------------------------------------------------------- the diagnostics' numbers


def test_layer_stats_match_a_hand_computation() -> None:
    pop = Population([_exp(hidden=[2])], in_features=3, n_classes=2, device=torch.device("cpu"))
    state = {k: v.clone() for k, v in pop.state_dict(0).items()}
    state["0.weight"] = torch.tensor([[3.0, -4.0, 5e-4], [0.0, 1e-4, -2.0]])
    state["3.weight"] = torch.tensor([[1.0, -1.0], [2e-3, 0.0]])
    pop.load_state_dicts([state])
    (n0, l2_0, l1_0, sp0), (n3, l2_3, l1_3, sp3) = pop.layer_stats()[0]
    assert (n0, n3) == ("0", "3")
    assert l2_0 == pytest.approx(math.sqrt(9 + 16 + 5e-4 ** 2 + 1e-4 ** 2 + 4), rel=1e-6)
    assert l1_0 == pytest.approx(3 + 4 + 5e-4 + 1e-4 + 2, rel=1e-6)
    assert sp0 == pytest.approx(3 / 6)  # 5e-4, 0 and 1e-4 are below 1e-3
    assert (l2_3, l1_3, sp3) == pytest.approx((math.sqrt(2 + 4e-6), 2.002, 1 / 4), rel=1e-6)


def test_weight_totals_weigh_layers_by_size() -> None:
    run = report.RunRecord(Path("r"), {}, {"model.hidden": [2]}, [], in_features=3, n_classes=2)
    row = {"l2_norm_0": 3.0, "sparsity_0": 0.5, "l2_norm_3": 4.0, "sparsity_3": 0.25}
    run.metrics = [row]
    sparsity, norm = report.weight_totals(row, run)
    assert norm == pytest.approx(5.0)
    assert sparsity == pytest.approx((0.5 * 6 + 0.25 * 4) / 10)
    run.in_features = None  # layout unknown: plain mean over layers
    assert report.weight_totals(row, run)[0] == pytest.approx(0.375)


def test_metrics_csv_weight_columns_match_the_saved_weights(sweep_dir: Path) -> None:
    for run in report.load_runs([sweep_dir]):
        weights = load_file(str(run.path / "checkpoints" / "last" / "model.safetensors"))
        last = run.metrics[-1]
        for layer in run.layers():
            w = weights[f"{layer}.weight"].astype(np.float64)
            assert last[f"l2_norm_{layer}"] == pytest.approx(np.sqrt((w ** 2).sum()), rel=1e-5)
            assert last[f"l1_norm_{layer}"] == pytest.approx(np.abs(w).sum(), rel=1e-5)
            assert last[f"sparsity_{layer}"] == pytest.approx((np.abs(w) < 1e-3).mean())
        assert last["gap_accuracy"] == pytest.approx(last["train_accuracy"]
                                                     - last["val_accuracy"])
        summary = run.summary
        assert summary["gap_at_last"]["loss"] == pytest.approx(summary["last"]["val_loss"]
                                                               - summary["last"]["train_loss"])


def test_l1_drives_clearly_more_weights_near_zero_than_no_penalty(tmp_path: Path) -> None:
    exps = [_exp(reg, lam, seed, epochs=20, hidden=[32])
            for reg, lam in (("none", 0.0), ("l1", 1e-2)) for seed in (0, 1)]
    results = train_population(exps, run_dirs=[tmp_path / f"{e.name}{e.training.seed}"
                                               for e in exps], eager_checkpoints=False)
    runs = {r.name: r for r in report.load_runs([tmp_path])}
    assert all(r.status == "completed" for r in results)
    for seed in (0, 1):
        plain = report.weight_totals(runs[f"none{seed}"].metrics[-1], runs[f"none{seed}"])[0]
        l1 = report.weight_totals(runs[f"l1{seed}"].metrics[-1], runs[f"l1{seed}"])[0]
        assert l1 >= plain + 0.2, (seed, plain, l1)  # measured: ≈0.37 vs ≤0.01


# ---------------------------------------------------------------- importances and display


def test_importances_from_runs_and_from_a_journal(sweep_dir: Path, tmp_path: Path) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    runs = report.load_runs([sweep_dir])
    study = study_from_runs(runs, "val_loss")
    assert len(study.trials) == 3
    assert set(study.trials[0].params) == {"regularization.type", "regularization.strength"}
    found = param_importances(None, runs, "val_loss")
    assert found is not None and "3 run directories" in found.source
    assert sum(v for _, v in found.rows) == pytest.approx(1.0)
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    stored = optuna.create_study(study_name="demo", storage=storage)
    stored.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2 + t.suggest_int("n", 0, 3),
                    n_trials=8)
    loaded = load_study(tmp_path)
    assert loaded is not None and loaded.study_name == "demo"
    found = param_importances(tmp_path, runs, "val_loss")  # the runs come first
    assert found is not None and "3 run directories" in found.source
    found = param_importances(tmp_path, [], "val_loss")  # no runs: the stored study
    assert found is not None and "Optuna study 'demo'" in found.source
    assert {name for name, _ in found.rows} == {"x", "n"}


def test_render_comparison_and_importances() -> None:
    console = Console(file=StringIO(), width=100)
    render_comparison(console, ["name", "lr", "best val acc"], [["run-a", "0.1", "0.9500"]],
                      caption="1 runs")
    render_importances(console, [("optimizer.lr", 0.75), ("optimizer.momentum", 0.25)],
                       "2 run directories")
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for needle in ("run-a", "0.9500", "optimizer.lr", "0.750", "2 run directories"):
        assert needle in text


# ---------------------------------------------------------------- TensorBoard


def _epoch() -> EpochMetrics:
    return EpochMetrics(0, 1, 0.5, 0.8, 0.6, 0.7, 0.1, 1.0,
                        [LayerStats("0", 2.0, 3.0, 0.25)])


def test_tensorboard_tags_carry_every_metrics_column() -> None:
    tags = scalar_tags(_epoch())
    assert tags["loss/train"] == 0.5 and tags["accuracy/val"] == 0.7
    assert tags["gap/accuracy"] == pytest.approx(0.1) and tags["lr"] == 0.1
    assert tags["weights/sparsity_0"] == 0.25 and tags["weights/l2_norm_0"] == 2.0
    assert len(tags) == len(_epoch().row()) - 1  # every column but `epoch`


def _with_tensorboard(exp: Experiment) -> Experiment:
    return exp.model_copy(update={"output": exp.output.model_copy(update={"tensorboard": True})})


class _FakeWriter:
    """Stands in for torch's SummaryWriter (the tensorboard extra is optional)."""

    made: list["_FakeWriter"] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        _FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        self.scalars.append((tag, value, global_step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_train_from_python_honours_output_tensorboard(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnet_cli.engine.train import tensorboard as tb

    monkeypatch.setattr(tb, "available", lambda: True)
    monkeypatch.setattr(tb, "_summary_writer", _FakeWriter)
    _FakeWriter.made = []
    plain = _exp(epochs=2, out=tmp_path / "runs")
    # a population where only member 1 asks for TensorBoard: only its run directory gets a log
    results = train_population([plain, _with_tensorboard(_exp(seed=1, epochs=2,
                                                              out=tmp_path / "runs"))])
    (writer,) = _FakeWriter.made
    assert writer.log_dir == str(Path(results[1].run_dir or "") / "tensorboard")
    assert writer.closed
    steps = sorted({step for tag, _, step in writer.scalars if tag == "loss/val"})
    assert steps == [1, 2]
    val = {step: v for tag, v, step in writer.scalars if tag == "accuracy/val"}
    assert val == {m.epoch: pytest.approx(m.val_accuracy) for m in results[1].history}
    _FakeWriter.made = []
    train(plain)
    assert _FakeWriter.made == []


def test_seeds_write_tensorboard_for_every_seed(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnet_cli.engine.train import tensorboard as tb
    from fcnet_cli.engine.train.group import train_group

    monkeypatch.setattr(tb, "available", lambda: True)
    monkeypatch.setattr(tb, "_summary_writer", _FakeWriter)
    _FakeWriter.made = []
    exp = _with_tensorboard(_exp(epochs=2, out=tmp_path / "runs"))
    group = train_group(exp.model_copy(update={
        "training": exp.training.model_copy(update={"seeds": 2})}))
    logs = sorted(w.log_dir for w in _FakeWriter.made)
    assert logs == sorted(str(Path(r.run_dir or "") / "tensorboard") for r in group.runs)
    assert len(logs) == 2 and all(w.closed for w in _FakeWriter.made)


@pytest.mark.skipif(not available(), reason="the tensorboard extra is not installed")
def test_tensorboard_logger_writes_event_files(tmp_path: Path) -> None:
    result = train(_with_tensorboard(_exp(epochs=2, out=tmp_path / "runs")))
    assert result.run_dir is not None
    events = list((Path(result.run_dir) / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_summary_json_is_what_compare_reads(sweep_dir: Path) -> None:
    run = report.load_runs([sweep_dir / "trials" / "l2"])[0]
    saved = json.loads((run.path / "summary.json").read_text())
    assert report.metric_value(run, "val_loss") == saved["best"]["val_loss"]

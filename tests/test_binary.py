"""Binary classification: ROC-AUC and PR-AUC (against scikit-learn, monitorable in training),
`--threshold` for predict and eval, and the validation threshold eval suggests."""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.engine.ranking import average_precision, best_threshold, roc_auc
from fcnet_cli.errors import UsageError

runner = CliRunner()


def binary_table(path: Path, n: int = 240, seed: int = 0) -> Path:
    """An imbalanced (about 15 % 'yes') two-feature table with an id column."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = x1 + 0.5 * x2 + rng.normal(scale=0.4, size=n) > 1.3
    pl.DataFrame({"id": [f"r{i:03d}" for i in range(n)], "x1": x1, "x2": x2,
                  "label": np.where(y, "yes", "no")}).write_csv(path)
    return path


def binary_experiment(tmp: Path, monitor: str = "val_roc_auc", epochs: int = 12) -> Path:
    table = binary_table(tmp / "bin.csv")
    exp = tmp / "bin.yaml"
    exp.write_text(
        f"data: {{dataset: csv, path: {table.as_posix()}, drop: [id]}}\n"
        "model: {hidden: [8]}\n"
        "optimizer: {name: adam, lr: 0.03}\n"
        f"training: {{epochs: {epochs}, batch_size: 32, device: cpu, "
        f"early_stopping: {{monitor: {monitor}}}}}\n"
        f"output: {{dir: {(tmp / 'runs').as_posix()}}}\n", encoding="utf-8")
    return exp


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fcnet_cli import load_experiment, train

    tmp = tmp_path_factory.mktemp("binary")
    result = train(load_experiment(binary_experiment(tmp)))
    assert result.run_dir is not None
    return Path(result.run_dir)


# ---------------------------------------------------------------- the metrics


def test_auc_of_a_known_case_with_ties_matches_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.7])  # a three-way tie at 0.4
    auc = float(roc_auc(torch.tensor(s), torch.tensor(y == 1)))
    ap = float(average_precision(torch.tensor(s), torch.tensor(y == 1)))
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc == pytest.approx(9 / 16)  # 8 pairs ordered + 2 ties × ½, of 16, by hand
    assert ap == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_auc_per_member_matches_sklearn_on_random_scores() -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(4, 50))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=(3, n)), 1)  # (K, N), with ties
        auc = roc_auc(torch.tensor(s), torch.tensor(y == 1))
        ap = average_precision(torch.tensor(s), torch.tensor(y == 1))
        for k in range(3):
            assert float(auc[k]) == pytest.approx(roc_auc_score(y, s[k]), abs=1e-12)
            assert float(ap[k]) == pytest.approx(average_precision_score(y, s[k]), abs=1e-12)


def test_one_class_gives_nan() -> None:
    s, y = torch.tensor([0.2, 0.5]), torch.tensor([True, True])
    assert math.isnan(float(roc_auc(s, y)))
    assert math.isnan(best_threshold(s, y)[0])


def test_best_threshold_maximizes_balanced_accuracy() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    margin = y * 1.0 + rng.normal(size=80)
    t, balanced = best_threshold(torch.tensor(margin), torch.tensor(y == 1))
    p = 1 / (1 + np.exp(-margin))
    assert 0 < t < 1
    assert balanced_accuracy_score(y, p >= t) == pytest.approx(balanced)
    best = max(balanced_accuracy_score(y, p >= q) for q in np.unique(p))
    assert balanced == pytest.approx(best)


# ---------------------------------------------------------------- training and eval


def test_roc_auc_is_monitored_and_recorded(binary_run: Path) -> None:
    from fcnet_cli.engine.evaluate import evaluate_checkpoint

    summary = json.loads((binary_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["monitor"] == "val_roc_auc"
    rows = list(csv.DictReader(io.StringIO((binary_run / "metrics.csv").read_text())))
    aucs = [float(r["val_roc_auc"]) for r in rows]
    assert "val_pr_auc" in rows[0]
    # the best epoch is the one with the highest validation ROC-AUC (higher is better)
    assert summary["best_epoch"] == 1 + max(range(len(aucs)), key=lambda i: (aucs[i], -i))
    # the training loop's value is the one the best checkpoint gives on its validation split
    val = evaluate_checkpoint(binary_run / "checkpoints" / "best", "val")
    assert val.metrics["roc_auc"] == pytest.approx(max(aucs), abs=1e-6)
    assert summary["test"]["metrics"]["roc_auc"] > 0.5
    assert "pr_auc" in summary["test"]["metrics"]


def test_roc_auc_monitor_on_three_classes_is_refused(tmp_path: Path) -> None:
    from fcnet_cli import load_experiment, train

    exp = tmp_path / "iris.yaml"
    exp.write_text("data: {dataset: iris}\nmodel: {hidden: [4]}\n"
                   "training: {epochs: 1, device: cpu, early_stopping: {monitor: val_pr_auc}}\n"
                   f"output: {{dir: {(tmp_path / 'runs').as_posix()}}}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="val_pr_auc needs a binary target.*3 classes"):
        train(load_experiment(exp))


def _predictions(run: Path, table: Path, *extra: str) -> list[dict[str, str]]:
    result = runner.invoke(app, ["predict", str(run), str(table), "--proba", *extra])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_predict_threshold_moves_the_decision(binary_run: Path) -> None:
    table = binary_run.parent.parent.parent / "bin.csv"
    default = _predictions(binary_run, table)
    low = _predictions(binary_run, table, "--threshold", "1e-9")
    high = _predictions(binary_run, table, "--threshold", "0.999999")
    assert {r["prediction"] for r in low} == {"yes"}
    assert {r["prediction"] for r in high} == {"no"}
    assert _predictions(binary_run, table, "--threshold", "0.5") == default
    p = np.array([float(r["proba_yes"]) for r in default])
    t = float(np.quantile(p, 0.7))  # a threshold that splits these rows 70/30
    got = [r["prediction"] for r in _predictions(binary_run, table, "--threshold", repr(t))]
    assert got == ["yes" if v >= t else "no" for v in p]
    assert 0 < got.count("yes") < len(got)
    # the probabilities themselves do not depend on the threshold
    assert [r["proba_yes"] for r in low] == [r["proba_yes"] for r in default]


@pytest.mark.parametrize("value", ["0", "1", "-0.5", "1.5"])
def test_threshold_outside_0_1_is_a_usage_error(binary_run: Path, value: str) -> None:
    table = binary_run.parent.parent.parent / "bin.csv"
    for args in (["predict", str(binary_run), str(table)], ["eval", str(binary_run)]):
        result = runner.invoke(app, [*args, "--threshold", value])
        assert result.exit_code == 2
        assert "--threshold must lie strictly between 0 and 1" in result.output


def test_threshold_on_a_multiclass_model_is_refused(tmp_path: Path) -> None:
    from tests.serve_data import train_iris

    trained = train_iris(tmp_path)
    for args in (["predict", str(trained.run_dir), str(trained.csv)],
                 ["eval", str(trained.run_dir)], ["eval", str(trained.run_dir), "--data",
                                                  str(trained.csv)]):
        result = runner.invoke(app, [*args, "--threshold", "0.3"])
        assert result.exit_code == 2, result.output
        assert "--threshold is for binary classifiers (2 classes); this model has 3 classes" \
            in result.output


def test_eval_reports_auc_and_the_validation_threshold(binary_run: Path) -> None:
    result = runner.invoke(app, ["eval", str(binary_run), "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)["metrics"]
    assert 0 < m["best_threshold"] < 1 and 0.5 <= m["best_threshold_balanced_accuracy"] <= 1
    # evaluating the validation split at that threshold gives that balanced accuracy
    val = runner.invoke(app, ["eval", str(binary_run), "--split", "val", "--json",
                              "--threshold", repr(m["best_threshold"])])
    got = json.loads(val.stdout)["metrics"]
    assert got["balanced_accuracy"] == pytest.approx(m["best_threshold_balanced_accuracy"])
    assert got["threshold"] == m["best_threshold"]
    text = runner.invoke(app, ["eval", str(binary_run)], env={"COLUMNS": "80"}).stdout
    assert "ROC-AUC" in text and "PR-AUC" in text
    assert f"--threshold {m['best_threshold']:.4g}" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_eval_threshold_changes_the_confusion_matrix(binary_run: Path) -> None:
    def confusion(*extra: str) -> list[list[int]]:
        result = runner.invoke(app, ["eval", str(binary_run), "--json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["confusion"]

    low = confusion("--threshold", "1e-9")
    assert low[0][0] == 0 and low[1][0] == 0  # every row predicted 'yes'
    assert confusion("--threshold", "0.5") == confusion()


def _sweep(tmp: Path, data: dict[str, object]) -> Path:
    import yaml

    base = {"data": data, "model": {"hidden": [8]}, "optimizer": {"name": "sgd", "lr": 0.1},
            "training": {"epochs": 2, "batch_size": 32, "device": "cpu"},
            "output": {"dir": str(tmp / "runs")}}
    doc = {"name": "auc", "base": base, "method": "grid", "metric": "val_roc_auc",
           "parameters": {"optimizer.lr": [0.001, 0.3]}}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_sweep_ranks_by_roc_auc_highest_first(tmp_path: Path) -> None:
    from fcnet_cli.sweep.run import load_sweep, run_sweep

    table = binary_table(tmp_path / "bin.csv")
    result = run_sweep(load_sweep(_sweep(tmp_path, {"dataset": "csv", "path": str(table),
                                                    "drop": ["id"]})))
    values = [t.value for t in result.trials if t.value is not None]
    assert len(values) == 2 and result.best is not None
    assert result.best.value == max(values)  # higher is better for ROC-AUC


def test_sweep_by_roc_auc_on_three_classes_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", str(_sweep(tmp_path, {"dataset": "iris"}))])
    assert result.exit_code == 2, result.output
    assert "metric: val_roc_auc needs a binary target (2 classes); the data has 3 classes" \
        in result.output

"""`fcnet validate --data`: the table is opened and split as train would, without training."""

from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from fcnet_cli.cli import app

runner = CliRunner()


def _experiment(tmp: Path, frame: pl.DataFrame, extra: str = "") -> Path:
    table = tmp / "t.csv"
    frame.write_csv(table)
    exp = tmp / "t.yaml"
    exp.write_text(f"data: {{dataset: csv, path: {table.as_posix()}, drop: [id]{extra}}}\n"
                   "model: {hidden: [4]}\ntraining: {epochs: 1, device: cpu}\n"
                   f"output: {{dir: {(tmp / 'runs').as_posix()}}}\n", encoding="utf-8")
    return exp


def _frame(n: int = 60) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({"id": [f"r{i}" for i in range(n)], "x": rng.normal(size=n),
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "label": rng.choice(["a", "b"], n)})


def test_missing_cells_fail_with_the_message_train_prints(tmp_path: Path) -> None:
    frame = _frame().with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(None).otherwise(pl.col("x")).alias("x"))
    exp = _experiment(tmp_path, frame)
    checked = runner.invoke(app, ["validate", str(exp), "--data"])
    trained = runner.invoke(app, ["train", str(exp), "--quiet"])
    assert checked.exit_code == 2 and trained.exit_code == 2
    assert "missing values in 1 column(s): 'x' 1 (row 5)" in checked.stderr
    assert checked.stderr == trained.stderr
    assert not (tmp_path / "runs").exists()  # validate made no run directory
    # without --data only the config is checked
    assert runner.invoke(app, ["validate", str(exp)]).exit_code == 0


def test_categories_over_the_limit_and_a_missing_target(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, _frame(), ", max_categories: 2")
    result = runner.invoke(app, ["validate", str(exp), "--data"])
    assert result.exit_code == 2
    assert "column 'colour' has 3 categories in the training split" in result.stderr
    exp = _experiment(tmp_path, _frame().rename({"label": "y"}))
    result = runner.invoke(app, ["validate", str(exp), "--data"])
    assert result.exit_code == 2 and "label" in result.stderr


def test_binary_metric_on_three_classes_is_refused(tmp_path: Path) -> None:
    frame = _frame().with_columns(pl.Series("label", ["a", "b", "c"] * 20))
    exp = _experiment(tmp_path, frame)
    result = runner.invoke(app, ["validate", str(exp), "--data", "--set",
                                 "training.early_stopping.monitor=val_roc_auc"])
    assert result.exit_code == 2
    assert "val_roc_auc needs a binary target (2 classes); the data has 3 classes" \
        in result.stderr


def test_a_good_table_gets_a_summary(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, _frame())
    result = runner.invoke(app, ["validate", str(exp), "--data"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    text = "\n".join(lines)
    assert "60: 36 train, 12 val, 12 test" in text  # rows and the split sizes
    assert "classification, 2 classes: a, b" in text
    assert "numeric        1: x" in text and "colour (3)" in text and "dropped" in text
    assert "model inputs   4" in text  # x plus three one-hot colours
    # every line fits 80 columns but the file's path, which is never split
    assert all(len(line) <= 80 for line in lines if not line.startswith("data "))
    assert not (tmp_path / "runs").exists()

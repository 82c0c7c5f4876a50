"""`fcnet splits`: the row numbers of each split (disjoint, complete, the rows eval and
predict use) with columns from the source file, and `predict --split --keep`."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from fcnet_cli.cli import app
from tests.test_binary import binary_experiment

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fcnet_cli import load_experiment, train

    tmp = tmp_path_factory.mktemp("splits")
    result = train(load_experiment(binary_experiment(tmp, "val_loss", epochs=2)))
    assert result.run_dir is not None
    return Path(result.run_dir)


def _source(run: Path) -> pl.DataFrame:
    return pl.read_csv(run.parent.parent.parent / "bin.csv")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_splits_cover_every_row_once_and_match_eval(run: Path) -> None:
    result = runner.invoke(app, ["splits", str(run), "--keep", "id", "--keep", "label"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    source = _source(run)
    by_split = {s: [int(r["row"]) for r in rows if r["split"] == s] for s in ("train", "val",
                                                                              "test")}
    every = sorted(sum(by_split.values(), []))
    assert every == list(range(1, source.height + 1))  # disjoint and complete, 1-based
    assert all(v == sorted(v) for v in by_split.values())
    # the kept columns are the source file's cells of that row (row 1 = first data row)
    for r in rows[:5] + rows[-5:]:
        assert r["id"] == source["id"][int(r["row"]) - 1]
        assert r["label"] == source["label"][int(r["row"]) - 1]
    # the same rows eval scores: counts and, per class, the supports
    for split in ("val", "test"):
        got = json.loads(runner.invoke(app, ["eval", str(run), "--split", split,
                                             "--json"]).stdout)
        assert got["n"] == len(by_split[split])
        labels = [source["label"][i - 1] for i in by_split[split]]
        assert got["support"] == [labels.count(c) for c in got["classes"]]


def test_predict_split_keeps_source_columns_in_split_order(run: Path) -> None:
    listed = _rows(runner.invoke(app, ["splits", str(run), "--keep", "id"]).stdout)
    test_ids = [r["id"] for r in listed if r["split"] == "test"]
    result = runner.invoke(app, ["predict", str(run), "--split", "test", "--keep", "id",
                                 "--batch-size", "7"])
    assert result.exit_code == 0, result.output
    predicted = _rows(result.stdout)
    assert [r["id"] for r in predicted] == test_ids
    # and the predictions are those of the same rows read from the file
    source = _source(run)
    table = source.filter(pl.col("id").is_in(test_ids))
    path = run.parent / "test_rows.csv"
    table.write_csv(path)
    direct = _rows(runner.invoke(app, ["predict", str(run), str(path), "--keep", "id"]).stdout)
    assert {r["id"]: r["prediction"] for r in direct} == {
        r["id"]: r["prediction"] for r in predicted}


def test_splits_to_a_file_and_errors(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "splits.csv"
    result = runner.invoke(app, ["splits", str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and "144 train, 48 val, 48 test rows" in result.stderr
    frame = pl.read_csv(out)
    assert frame.columns == ["split", "row"] and frame.height == 240
    again = runner.invoke(app, ["splits", str(run), "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["splits", str(run), "--keep", "nope"])
    assert bad.exit_code == 2 and "no column(s) nope to keep" in bad.output


def test_splits_of_a_builtin_set_without_keep(tmp_path: Path) -> None:
    from fcnet_cli import load_experiment, train
    from fcnet_cli.engine.data.load import load_data

    exp_path = tmp_path / "iris.yaml"
    exp_path.write_text("data: {dataset: iris}\nmodel: {hidden: [4]}\n"
                        "training: {epochs: 1, device: cpu}\n"
                        f"output: {{dir: {(tmp_path / 'runs').as_posix()}}}\n",
                        encoding="utf-8")
    exp = load_experiment(exp_path)
    result = train(exp)
    listed = _rows(runner.invoke(app, ["splits", str(result.run_dir)]).stdout)
    test_rows = np.array([int(r["row"]) - 1 for r in listed if r["split"] == "test"])
    from sklearn.datasets import load_iris

    x = load_iris().data.astype(np.float32)
    data = load_data(exp.data)
    norm = data.normalization
    expected = norm.apply_(torch.from_numpy(x[test_rows].copy())).numpy()
    assert np.allclose(expected, data.x_test.numpy(), atol=1e-6)
    keep = runner.invoke(app, ["splits", str(result.run_dir), "--keep", "id"])
    assert keep.exit_code == 2 and "built-in data set" in keep.output

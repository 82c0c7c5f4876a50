"""`fcnet predict` and `fcnet eval --data`: formats, streaming, column matching, bad input."""

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from serve_data import FEATURES, Trained, train_iris, usage_error
from typer.testing import CliRunner, Result

from fcnet_cli import load_model
from fcnet_cli.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_iris(tmp_path_factory.mktemp("iris"))


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def test_help_lists_predict_and_export() -> None:
    result = _ok(runner.invoke(app, ["--help"]))
    assert "predict" in result.stdout and "export" in result.stdout
    for command in ("predict", "export"):
        assert f"fcnet {command}" in _ok(runner.invoke(app, [command, "--help"])).stdout
    assert "--data" in _ok(runner.invoke(app, ["eval", "--help"])).stdout


def _shuffled(trained: Trained) -> pl.DataFrame:
    """The rows with the columns in another order, an id and an extra column."""
    return trained.frame.with_columns(extra=pl.lit(1)).select(
        ["petal_width", "id", "extra", "sepal_length", "label", "petal_length", "sepal_width"])


def test_csv_to_stdout_keeps_ids_and_matches_columns_by_name(trained: Trained,
                                                             tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    _shuffled(trained).write_csv(src)
    result = _ok(runner.invoke(app, ["predict", str(trained.run_dir), str(src), "--keep", "id"]))
    out = pl.read_csv(io.StringIO(result.stdout))
    assert out.columns == ["id", "prediction"]
    assert out["id"].to_list() == trained.frame["id"].to_list()  # input order
    expected = load_model(trained.run_dir).predict(trained.frame.select(FEATURES).to_numpy())
    assert out["prediction"].to_list() == expected.tolist()
    assert set(expected) <= {"setosa", "versicolor", "virginica"} and len(set(expected)) == 3
    assert "ignored 1 column(s) the model does not use: extra" in result.stderr


def test_parquet_in_csv_out_with_proba_and_small_chunks(trained: Trained, tmp_path: Path) -> None:
    src, a, b = tmp_path / "rows.parquet", tmp_path / "a.csv", tmp_path / "b.csv"
    _shuffled(trained).write_parquet(src)
    ckpt = str(trained.run_dir)
    _ok(runner.invoke(app, ["predict", ckpt, str(src), "-o", str(a), "--proba"]))
    _ok(runner.invoke(app, ["predict", ckpt, str(src), "-o", str(b), "--proba",
                            "--batch-size", "7"]))
    out, small = pl.read_csv(a), pl.read_csv(b)
    # chunking changes nothing but the matmul's float blocking
    assert out["prediction"].to_list() == small["prediction"].to_list()
    np.testing.assert_allclose(out.drop("prediction").to_numpy(),
                               small.drop("prediction").to_numpy(), atol=1e-6)
    assert out.columns == ["prediction", "proba_setosa", "proba_versicolor", "proba_virginica"]
    proba = out.select(out.columns[1:]).to_numpy()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    model = load_model(trained.run_dir)
    np.testing.assert_allclose(proba, model.predict_proba(trained.frame), atol=1e-7)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_npz_in_json_and_parquet_out(trained: Trained, tmp_path: Path) -> None:
    x = trained.frame.select(FEATURES).to_numpy()
    src = tmp_path / "rows.npz"
    np.savez(src, x=x, row=np.arange(len(x)))
    _ok(runner.invoke(app, ["predict", str(trained.run_dir), str(src), "-o",
                            str(tmp_path / "p.json"), "--keep", "row", "--proba"]))
    rows = json.loads((tmp_path / "p.json").read_text())
    expected = load_model(trained.run_dir).predict(x).tolist()
    assert [r["row"] for r in rows] == list(range(len(x)))
    assert [r["prediction"] for r in rows] == expected
    assert set(rows[0]) == {"row", "prediction", "proba_setosa", "proba_versicolor",
                            "proba_virginica"}
    _ok(runner.invoke(app, ["predict", str(trained.run_dir), str(src), "--format", "parquet",
                            "-o", str(tmp_path / "p.out"), "--batch-size", "40"]))
    assert pl.read_parquet(tmp_path / "p.out")["prediction"].to_list() == expected


def test_gzipped_csv_and_empty_table(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "rows.csv.gz"
    with gzip.open(src, "wb") as f:
        trained.frame.write_csv(f)
    out = _ok(runner.invoke(app, ["predict", str(trained.run_dir), str(src)])).stdout
    assert len(out.splitlines()) == 151
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(FEATURES) + "\n")
    out = _ok(runner.invoke(app, ["predict", str(trained.run_dir), str(empty), "--proba"])).stdout
    assert out.splitlines() == ["prediction,proba_setosa,proba_versicolor,proba_virginica"]


def test_csv_blocks_cut_between_rows_never_inside_quotes(trained: Trained,
                                                        tmp_path: Path) -> None:
    frame = pl.concat([trained.frame] * 4)  # ~30 kB: many 4 kB blocks at --batch-size 1
    notes = [f'say "hi",\nrow {i}' if i % 3 else f"r{i}" for i in range(frame.height)]
    frame = frame.with_columns(note=pl.Series(notes))
    src = tmp_path / "quoted.csv"
    frame.write_csv(src)
    for batch in ("1", "4", "1000"):
        out = _ok(runner.invoke(app, ["predict", str(trained.run_dir), str(src), "--keep",
                                      "note", "--batch-size", batch])).stdout
        got = pl.read_csv(io.StringIO(out))
        assert got["note"].to_list() == notes
        assert got["prediction"].to_list() == load_model(trained.run_dir).predict(frame).tolist()


def test_closed_stdout_ends_predict_quietly(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "many.csv"
    pl.concat([trained.frame] * 200).write_csv(src)  # 30,000 rows: more than a pipe holds
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "predict",
                             str(trained.run_dir), str(src), "--batch-size", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"prediction\n"
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "error" not in err and "Traceback" not in err


def test_split_predicts_the_checkpoint_test_rows(trained: Trained) -> None:
    result = _ok(runner.invoke(app, ["predict", str(trained.run_dir), "--split", "test"]))
    predicted = pl.read_csv(io.StringIO(result.stdout))["prediction"].to_list()
    report = json.loads(_ok(runner.invoke(
        app, ["eval", str(trained.run_dir), "--split", "test", "--json"])).stdout)
    from fcnet_cli.config import load_experiment
    from fcnet_cli.engine.data.load import load_data

    splits = load_data(load_experiment(trained.run_dir / "config.yaml").data)
    truth = [splits.classes[i] for i in splits.y_test.tolist()]
    assert len(predicted) == report["n"] == len(truth)
    hits = sum(p == t for p, t in zip(predicted, truth, strict=True))
    assert hits / len(truth) == pytest.approx(report["accuracy"])


def test_eval_on_new_labelled_data(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "labelled.parquet"
    _shuffled(trained).write_parquet(src)
    report = json.loads(_ok(runner.invoke(
        app, ["eval", str(trained.run_dir), "--data", str(src), "--json"])).stdout)
    predicted = load_model(trained.run_dir).predict(trained.frame)
    truth = trained.frame["label"].to_numpy()
    assert report["n"] == 150
    assert report["accuracy"] == pytest.approx(float((predicted == truth).mean()))
    assert sum(map(sum, report["confusion"])) == 150
    npz = tmp_path / "labelled.npz"
    index = {"setosa": 0, "versicolor": 1, "virginica": 2}
    np.savez(npz, x=trained.frame.select(FEATURES).to_numpy(),
             y=np.array([index[t] for t in truth]))
    again = json.loads(_ok(runner.invoke(
        app, ["eval", str(trained.run_dir), "--data", str(npz), "--json"])).stdout)
    assert again["accuracy"] == report["accuracy"]
    assert again["confusion"] == report["confusion"]


# ---------------------------------------------------------------- bad input: exit 2, one line


def _bad_csv(trained: Trained, tmp_path: Path, row: int, column: str, value: str) -> Path:
    frame = trained.frame.with_columns(pl.col(column).cast(pl.String))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value))
                               .otherwise(pl.col(column)).alias(column))
    path = tmp_path / f"bad-{column}.csv"
    frame.write_csv(path)
    return path


@pytest.mark.parametrize(("value", "needle"), [
    ("abc", "row 97, column 'petal_length': 'abc' is not a number"),
    ("", "row 97, column 'petal_length': empty cell"),
    ("nan", "row 97, column 'petal_length': empty cell"),  # NaN counts as missing
    ("inf", "row 97, column 'petal_length': inf is not a finite number"),
])
def test_bad_cells_name_row_and_column_and_leave_no_output(trained: Trained, tmp_path: Path,
                                                           value: str, needle: str) -> None:
    src = _bad_csv(trained, tmp_path, 97, "petal_length", value)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", str(trained.run_dir), str(src), "-o", str(out),
                                 "--batch-size", "20"])  # the bad row is in the 5th chunk
    usage_error(result, str(src), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # nothing written


def test_unreadable_tables(trained: Trained, tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(",".join(FEATURES) + "\n1,2,3,4\n1,2,3,4,5,6\n")
    empty, odd = tmp_path / "empty.csv", tmp_path / "rows.txt"
    empty.write_text("")
    odd.write_text("a\n")
    ckpt = str(trained.run_dir)
    usage_error(runner.invoke(app, ["predict", ckpt, str(ragged)]), str(ragged), "cannot read csv")
    usage_error(runner.invoke(app, ["predict", ckpt, str(empty)]), "file is empty")
    usage_error(runner.invoke(app, ["predict", ckpt, str(odd)]), "unknown table format")
    usage_error(runner.invoke(app, ["predict", ckpt, str(tmp_path / "none.csv")]),
                 "file not found")


def test_missing_columns_are_listed(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "few.csv"
    trained.frame.drop("sepal_width", "petal_width").write_csv(src)
    usage_error(runner.invoke(app, ["predict", str(trained.run_dir), str(src)]),
                 str(src), "missing feature column(s) sepal_width, petal_width")


def test_npz_of_wrong_width(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "wide.npz"
    np.savez(src, x=np.zeros((3, 5)))
    usage_error(runner.invoke(app, ["predict", str(trained.run_dir), str(src)]),
                 str(src), "has 5 features per row, the model takes 4")


def test_unknown_label_in_eval_data(trained: Trained, tmp_path: Path) -> None:
    src = _bad_csv(trained, tmp_path, 12, "label", "daisy")
    usage_error(runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(src)]),
                 str(src), "row 12: label 'daisy' is not a class the model knows")
    nolabel = tmp_path / "nolabel.csv"
    trained.frame.drop("label").write_csv(nolabel)
    usage_error(runner.invoke(app, ["eval", str(trained.run_dir), "--data", str(nolabel)]),
                 "no label column 'label'")


def test_output_path_refusals(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    trained.frame.write_csv(src)
    before = src.read_bytes()
    ckpt = str(trained.run_dir)
    usage_error(runner.invoke(app, ["predict", ckpt, str(src), "-o", str(tmp_path / "no/x.csv")]),
                 "directory", "does not exist")
    usage_error(runner.invoke(app, ["predict", ckpt, str(src), "-o", str(src), "--overwrite"]),
                 "is the input file")
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    usage_error(runner.invoke(app, ["predict", ckpt, str(src), "-o", str(out)]),
                 str(out), "already exists (use --overwrite")
    assert out.read_text() == "precious\n" and src.read_bytes() == before
    _ok(runner.invoke(app, ["predict", ckpt, str(src), "-o", str(out), "--overwrite"]))
    assert out.read_text().startswith("prediction\n")


def test_bad_checkpoints(trained: Trained, tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    trained.frame.write_csv(src)
    usage_error(runner.invoke(app, ["predict", str(tmp_path / "nope"), str(src)]),
                 "no such file or directory")
    (tmp_path / "empty").mkdir()
    usage_error(runner.invoke(app, ["predict", str(tmp_path / "empty"), str(src)]),
                 "no checkpoint in this directory")
    copy = tmp_path / "ckpt"
    shutil.copytree(trained.run_dir / "checkpoints" / "best", copy)
    (copy / "model.safetensors").write_bytes(b"\0" * 64)
    usage_error(runner.invoke(app, ["export", str(copy), "--format", "torchscript",
                                     "-o", str(tmp_path / "m.pt")]), "model.safetensors")
    assert not (tmp_path / "m.pt").exists()


def test_argument_conflicts(trained: Trained, tmp_path: Path) -> None:
    ckpt = str(trained.run_dir)
    usage_error(runner.invoke(app, ["predict", ckpt]), "give a DATA file or --split")
    # --split --keep reads the source file, which has no id column
    usage_error(runner.invoke(app, ["predict", ckpt, "--split", "val", "--keep", "id"]),
                 "no column(s) id to keep")
    src = tmp_path / "rows.csv"
    trained.frame.write_csv(src)
    usage_error(runner.invoke(app, ["predict", ckpt, str(src), "--keep", "nope"]),
                 "no column(s) nope to keep")
    usage_error(runner.invoke(app, ["predict", ckpt, str(src), "--format", "parquet"]),
                 "parquet output needs -o FILE")
    usage_error(runner.invoke(app, ["predict", ckpt, str(src), "--batch-size", "0"]),
                 "--batch-size must be at least 1")

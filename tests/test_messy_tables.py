"""A user's own messy tables through the whole path: train → predict → eval --data → load_model.

Every model here has text, integer-coded, boolean or date columns, missing cells and odd column
names; the new rows come with shuffled columns, an extra column, an id to keep and a missing
cell, in CSV and in Parquet. Predictions from the CLI must equal those of `load_model` on the
same rows.
"""

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from messy_tables import CARS, MESSY, Run, train_run, write_csv
from serve_data import usage_error
from typer.testing import CliRunner, Result

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.errors import DataError

runner = CliRunner()
_RUNS: dict[str, Run] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("messy")


def _run(root: Path, name: str) -> Run:
    """One tiny training per kind of table and test session."""
    if name not in _RUNS:
        _RUNS[name] = train_run(root / name, MESSY[name])
    return _RUNS[name]


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _with_unseen(run: Run, rows: pl.DataFrame, at: tuple[int, ...] = (2, 9)) -> pl.DataFrame:
    """``rows`` with the kind's unseen category written into rows ``at`` (0-based)."""
    column, value = run.kind.unseen
    hit = pl.int_range(pl.len()).is_in(list(at))
    return rows.with_columns(pl.when(hit).then(pl.lit(value))
                             .otherwise(pl.col(column).cast(pl.String)).alias(column))


def _new_rows(run: Run, n: int = 30, seed: int = 7) -> pl.DataFrame:
    """Rows training never saw, with an id, an extra column and the columns reordered."""
    frame = run.kind.frame(n, seed).with_row_index("id").with_columns(
        pl.format("r{}", pl.col("id")).alias("id"), note=pl.lit("x"))
    return frame.select(list(reversed(frame.columns)))


@pytest.mark.parametrize("name", list(MESSY))
def test_predict_reads_the_raw_columns_csv_and_parquet(root: Path, name: str) -> None:
    run = _run(root, name)
    rows = _new_rows(run)
    csv = write_csv(rows, root / name / "new.csv", bom=run.kind.bom)
    pq = root / name / "new.parquet"
    pl.read_csv(csv).write_parquet(pq)
    result = _ok(runner.invoke(app, ["predict", str(run.run_dir), str(csv), "--keep", "id",
                                     "--proba"]))
    out = pl.read_csv(io.StringIO(result.stdout))
    assert out.columns[:2] == ["id", "prediction"] and out.height == rows.height
    assert out["id"].to_list() == rows["id"].to_list()
    assert "ignored 1 column(s) the model does not use: note" in result.stderr
    model = load_model(run.run_dir)
    proba = model.predict_proba(pl.read_csv(csv))
    np.testing.assert_allclose(out.select(pl.selectors.starts_with("proba_")).to_numpy(), proba,
                               atol=1e-6)
    assert out["prediction"].cast(pl.String).to_list() == model.classes_[proba.argmax(1)].tolist()
    from_pq = _ok(runner.invoke(app, ["predict", str(run.run_dir), str(pq), "--keep", "id",
                                      "--proba"]))
    assert pl.read_csv(io.StringIO(from_pq.stdout)).equals(out)


@pytest.mark.parametrize("name", list(MESSY))
def test_eval_data_scores_a_holdout_file(root: Path, name: str) -> None:
    run = _run(root, name)
    holdout = run.kind.frame(40, 11)
    csv = write_csv(holdout, root / name / "holdout.csv", bom=run.kind.bom)
    result = _ok(runner.invoke(app, ["eval", str(run.run_dir), "--data", str(csv), "--json"]))
    report = json.loads(result.stdout)
    assert report["n"] == 40
    labels = load_model(run.run_dir).predict(pl.read_csv(csv))
    want = (labels == holdout[run.kind.target].cast(pl.String).to_numpy()).mean()
    assert report["accuracy"] == pytest.approx(want)


def test_boolean_column_means_the_same_whatever_the_reader_infers(root: Path) -> None:
    """Negative control: training read `alone` as Boolean; a new file with one cell that is
    not a boolean is read as text `True`/`False`. The other rows must not change."""
    run = _run(root, "passengers")
    rows = run.kind.frame(40, 3)
    clean = write_csv(rows, root / "passengers" / "clean.csv")
    text = rows.with_columns(pl.col("alone").cast(pl.String).str.to_titlecase())
    dirty = write_csv(text.with_columns(
        alone=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("unknown"))
        .otherwise(pl.col("alone"))), root / "passengers" / "dirty.csv")
    assert pl.read_csv(clean).schema["alone"] == pl.Boolean
    assert pl.read_csv(dirty).schema["alone"] == pl.String  # "True", "False", "unknown"
    model = load_model(run.run_dir)
    want = model.predict_proba(pl.read_csv(clean))
    others = np.arange(40) != 5
    with pytest.warns(UserWarning, match="'alone' 'unknown'"):
        got = model.predict_proba(pl.read_csv(dirty))
    np.testing.assert_array_equal(got[others], want[others])
    assert not np.array_equal(got[5], want[5])  # the unknown cell encodes as all zeros
    out = _ok(runner.invoke(app, ["predict", str(run.run_dir), str(dirty), "--proba"]))
    cli = pl.read_csv(io.StringIO(out.stdout)).select("proba_0", "proba_1").to_numpy()
    np.testing.assert_allclose(cli[others], want[others], atol=1e-6)
    # 1/0 and yes/no spell the same booleans
    spelled = rows.with_columns(alone=pl.col("alone").cast(pl.Int64))
    np.testing.assert_array_equal(model.predict_proba(spelled), want)
    yes_no = rows.with_columns(alone=pl.when(pl.col("alone")).then(pl.lit(" Yes"))
                               .otherwise(pl.lit("no")))
    np.testing.assert_array_equal(model.predict_proba(yes_no), want)


def test_integer_categories_match_however_written(root: Path) -> None:
    run = _run(root, "passengers")
    rows = run.kind.frame(30, 4)
    model = load_model(run.run_dir)
    assert [n for n in model.spec.input_names if n.startswith("pclass")] == [
        "pclass=1", "pclass=2", "pclass=3"]
    want = model.predict_proba(rows)
    for written in (pl.col("pclass").cast(pl.Float64), pl.col("pclass").cast(pl.String),
                    pl.format(" {}.0 ", pl.col("pclass"))):
        np.testing.assert_array_equal(model.predict_proba(rows.with_columns(written)), want)


def _pandas(rows: pl.DataFrame, text: str) -> pd.DataFrame:
    """``rows`` as pandas: text columns as ``object`` (missing: None and np.nan in turn) or as
    ``string`` (missing: pd.NA); numbers as float64 with NaN."""
    out = {}
    for name in rows.columns:
        values = rows[name].to_list()
        if rows.schema[name] == pl.String and text == "object":
            out[name] = pd.Series([v if v is not None else (None, np.nan)[i % 2]
                                   for i, v in enumerate(values)], dtype=object)
        elif rows.schema[name] == pl.String:
            out[name] = pd.Series(pd.array(values, dtype="string"))
        else:
            out[name] = pd.Series(values)
    return pd.DataFrame(out)


@pytest.mark.parametrize("name", list(MESSY))
def test_load_model_reads_polars_pandas_and_numpy_alike(root: Path, name: str) -> None:
    run = _run(root, name)
    rows = pl.read_csv(write_csv(run.kind.frame(30, 8), root / name / "api.csv"))
    assert rows.null_count().sum_horizontal().item() > 0 or name in ("passengers", "unicode")
    model = load_model(run.run_dir)
    want = model.predict_proba(rows)
    latest = load_model(run.run_dir.parent / "latest")  # NAME's newest run, as in the CLI
    assert latest.checkpoint.dir == model.checkpoint.dir
    for text in ("object", "string"):
        frame = _pandas(rows, text)
        np.testing.assert_array_equal(model.predict_proba(frame), want, err_msg=text)
    raw = rows.select(model.feature_names_in_.tolist()).to_numpy()  # object array, raw columns
    np.testing.assert_array_equal(model.predict_proba(raw), want)
    with pytest.raises(DataError) as e:
        model.predict_proba(raw[:, :-1])
    message = str(e.value)
    assert f"the model takes {model.n_features_in_} raw columns" in message
    assert all(c in message for c in model.feature_names_in_)


UNSEEN = [n for n, k in MESSY.items() if k.unseen[0]]


@pytest.mark.parametrize("name", UNSEEN)
def test_unseen_categories_get_one_notice_line(root: Path, name: str) -> None:
    run = _run(root, name)
    column, value = run.kind.unseen
    rows = _with_unseen(run, run.kind.frame(20, 9))
    csv = write_csv(rows, root / name / "unseen.csv")
    result = _ok(runner.invoke(app, ["predict", str(run.run_dir), str(csv),
                                     "--batch-size", "5"]))
    notes = [line for line in result.stderr.splitlines() if "unseen" in line]
    assert notes == [f"note: {csv}: categories unseen in training, encoded as all zeros: "
                     f"'{column}' '{value}' (2 rows)"], result.stderr
    model = load_model(run.run_dir)
    with pytest.warns(UserWarning, match=f"'{column}' '{value}' \\(2 rows\\)"):
        labels = model.predict(pl.read_csv(csv))
    assert pl.read_csv(io.StringIO(result.stdout))["prediction"].cast(pl.String).to_list() == \
        labels.tolist()
    report = json.loads(_ok(runner.invoke(app, ["eval", str(run.run_dir), "--data", str(csv),
                                                "--json"])).stdout)
    assert any(f"'{column}' '{value}' (2 rows)" in n for n in report["notices"])


def test_unknown_categories_error_refuses_with_the_row(root: Path) -> None:
    kind = MESSY["penguins"]
    run = _run(root, "penguins")
    strict = train_run(root / "strict2",
                       replace(kind, data=kind.data + ", unknown_categories: error"))
    rows = _with_unseen(run, kind.frame(20, 9), at=(6,))
    csv = write_csv(rows, root / "strict2" / "unseen.csv")
    out = root / "strict2" / "out.csv"
    usage_error(runner.invoke(app, ["predict", str(strict.run_dir), str(csv), "-o", str(out)]),
             str(csv), "row 7, column 'island': 'Atlantis' is a category unseen in training",
             "data.unknown_categories is error")
    assert not out.exists()
    usage_error(runner.invoke(app, ["eval", str(strict.run_dir), "--data", str(csv)]),
             "'Atlantis' is a category unseen in training")
    with pytest.raises(DataError, match="'Atlantis' is a category unseen"):
        load_model(strict.run_dir).predict(pl.read_csv(csv))
    _ok(runner.invoke(app, ["predict", str(run.run_dir), str(csv), "-o", str(out)]))


def test_boolean_target_is_matched_in_eval_data(root: Path) -> None:
    """Training read the target `True`/`False` as booleans (classes false/true); eval --data
    reads the label column as text and must still match them."""
    kind = MESSY["passengers"]
    frame = kind.frame(100, 0).with_columns(pl.col("survived").cast(pl.Boolean))
    run = train_run(root / "booltarget", kind, frame=frame)
    assert load_model(run.run_dir).classes_.tolist() == ["false", "true"]
    labels = pl.col("survived").cast(pl.Boolean).cast(pl.String).str.to_titlecase()
    holdout = write_csv(kind.frame(30, 12).with_columns(labels),  # True/False, as pandas writes
                        root / "booltarget" / "holdout.csv")
    report = json.loads(_ok(runner.invoke(app, ["eval", str(run.run_dir), "--data",
                                                str(holdout), "--json"])).stdout)
    assert report["n"] == 30


def test_numpy_rows_of_a_numeric_model_with_imputation(root: Path) -> None:
    """Numeric columns only, but imputed with a missing indicator: the model has more inputs
    than raw columns, and numpy rows of the raw columns (NaN = missing) still work."""
    kind = MESSY["penguins"]
    frame = kind.frame(100, 0).select("bill_length_mm", "flipper_length_mm", "species")
    run = train_run(root / "numeric", kind, frame=frame)
    model = load_model(run.run_dir)
    assert model.spec.input_names == ["bill_length_mm", "bill_length_mm_missing",
                                      "flipper_length_mm"]
    rows = kind.frame(20, 3).select("bill_length_mm", "flipper_length_mm")
    x = rows.to_numpy()  # float64 with NaN where the cell is empty
    assert np.isnan(x).any()
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(rows))
    with pytest.raises(DataError, match="the model takes 2 raw columns"):
        model.predict_proba(x[:, :1])


def test_a_missing_column_is_one_line_and_nothing_written(root: Path) -> None:
    run = _run(root, "penguins")
    src = write_csv(run.kind.frame(10, 1).drop("island"), root / "penguins" / "few.csv")
    out = root / "penguins" / "few_out.csv"
    usage_error(runner.invoke(app, ["predict", str(run.run_dir), str(src), "-o", str(out)]),
             "missing feature column(s) island")
    assert not out.exists()
    usage_error(runner.invoke(app, ["eval", str(run.run_dir), "--data", str(src)]),
             "missing feature column(s) island")


def test_regression_with_text_date_and_empty_cells(root: Path) -> None:
    """A cars-like table: `origin` text, `year` a date, `horsepower` with holes, target mpg."""
    run = train_run(root / "cars", CARS)
    model = load_model(run.run_dir)
    assert model.task == "regression"
    assert model.spec.input_names == ["origin=europe", "origin=japan", "origin=usa",
                                      "year.days", "year.month", "year.weekday", "horsepower"]
    rows = _with_unseen(run, CARS.frame(25, 6), at=(3,))
    csv = write_csv(rows.select(list(reversed(rows.columns))), root / "cars" / "new.csv")
    result = _ok(runner.invoke(app, ["predict", str(run.run_dir), str(csv)]))
    out = pl.read_csv(io.StringIO(result.stdout))
    with pytest.warns(UserWarning, match="'origin' 'mars' \\(1 row\\)"):
        want = model.predict(_pandas(pl.read_csv(csv), "object"))
    np.testing.assert_allclose(out["mpg"].to_numpy(), want, rtol=1e-5)
    assert "'origin' 'mars' (1 row)" in result.stderr
    report = json.loads(_ok(runner.invoke(app, ["eval", str(run.run_dir), "--data", str(csv),
                                                "--json"])).stdout)
    assert report["n"] == 25
    rmse = float(np.sqrt(np.mean((want - rows["mpg"].to_numpy()) ** 2)))
    assert report["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-4)

"""Date columns: parsed alike from CSV text and Parquet dates, three numeric inputs each."""

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from messy_tables import MESSY, Run, dated, train_run, write_csv
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.config import DataConfig
from fcnet_cli.engine.data.load import load_data
from fcnet_cli.errors import DataError

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return train_run(tmp_path_factory.mktemp("dates"), MESSY["dated"])


def _as_dates(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("day").str.to_date())


def test_a_date_column_is_three_numbers(run: Run) -> None:
    model = load_model(run.run_dir)
    assert model.spec.input_names == ["day.days", "day.month", "day.weekday", "amount"]
    col = model.spec.prep.columns[0]
    days = _as_dates(pl.read_csv(run.csv)).get_column("day").drop_nulls().cast(pl.Int64)
    assert col.kind == "date" and col.origin is not None
    assert days.min() <= col.origin < days.max()  # the training split's earliest date
    frame = pl.DataFrame({"day": ["2020-03-02", "2021-01-10 08:30:00", None],
                          "amount": [1.0, 2.0, 3.0]})
    x, unseen = model.spec.prep.encode(frame)
    assert not unseen
    fill = float(col.fill)  # type: ignore[arg-type]
    np.testing.assert_array_equal(x[:, 1:3], [[3, 0], [1, 6], [x[2, 1], x[2, 2]]])
    assert x[0, 0] == 18323 - col.origin and x[1, 0] == 18637 - col.origin  # days since origin
    assert x[2, 0] == fill - col.origin  # the missing date: the training median


def test_csv_and_parquet_dates_predict_alike_even_after_training(run: Run,
                                                                 tmp_path: Path) -> None:
    later = dated(30, seed=5, start="2023-06-01")  # every date after the training dates
    csv = write_csv(later, tmp_path / "later.csv")
    pq = tmp_path / "later.parquet"
    _as_dates(later).write_parquet(pq)
    assert pl.read_parquet(pq).schema["day"] == pl.Date
    outs = []
    for src in (csv, pq):
        result = runner.invoke(app, ["predict", str(run.run_dir), str(src), "--proba"])
        assert result.exit_code == 0, result.output
        assert "unseen" not in result.stderr
        outs.append(pl.read_csv(io.StringIO(result.stdout)))
    assert outs[0].equals(outs[1])
    stamps = _as_dates(later).with_columns(pl.col("day").cast(pl.Datetime("us", "UTC")))
    np.testing.assert_allclose(load_model(run.run_dir).predict_proba(stamps),
                               outs[0].select("proba_hi", "proba_lo").to_numpy(), atol=1e-6)


def test_training_from_parquet_dates_matches_csv(tmp_path: Path) -> None:
    frame = dated(60)
    csv = write_csv(frame, tmp_path / "d.csv")
    pq = tmp_path / "d.parquet"
    _as_dates(frame).write_parquet(pq)
    splits = [load_data(DataConfig.model_validate(
        {"dataset": kind, "path": str(p), "missing": "median"}))
        for kind, p in (("csv", csv), ("parquet", pq))]
    assert splits[0].preprocessing.to_json() == splits[1].preprocessing.to_json()
    assert np.array_equal(splits[0].x_train.numpy(), splits[1].x_train.numpy())


def test_bad_dates(run: Run, tmp_path: Path) -> None:
    frame = dated(20, seed=2).with_columns(
        day=pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("2020-13-45"))
        .otherwise(pl.col("day")))
    src = write_csv(frame, tmp_path / "bad.csv")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", str(run.run_dir), str(src), "-o", str(out)])
    assert result.exit_code == 2 and not out.exists(), result.output
    assert result.stderr.splitlines() == [
        f"error: {src}: row 5, column 'day': '2020-13-45' is not a date (YYYY-MM-DD)"]
    with pytest.raises(DataError, match="column 'day' has type Int32, expected dates"):
        load_model(run.run_dir).predict(frame.with_columns(day=pl.lit(3)))
    # training: a few non-dates among many dates name the first one
    many = dated(60).with_columns(day=pl.when(pl.int_range(pl.len()) == 7)
                                  .then(pl.lit("soon")).otherwise(pl.col("day")))
    with pytest.raises(DataError, match=r"row 8 \(line 9\), column 'day': 'soon' is not a date"):
        load_data(DataConfig.model_validate({"dataset": "csv", "missing": "median",
                                             "path": str(write_csv(many, tmp_path / "m.csv"))}))


def test_checkpoints_without_the_new_keys_still_load(run: Run) -> None:
    from fcnet_cli.engine.data.tables import Preprocessing

    meta = json.loads((run.run_dir / "checkpoints" / "best" / "meta.json").read_text())
    old = meta["preprocessing"]
    old.pop("unknown_categories")
    for col in old["columns"]:
        col.pop("form")
        col.pop("origin")
    old["columns"] = [c for c in old["columns"] if c["name"] == "amount"]
    old["normalization"] = {k: v[-1:] if isinstance(v, list) else v
                            for k, v in old["normalization"].items()}
    prep = Preprocessing.from_json(old)
    assert prep.unknown_categories == "ignore" and prep.columns[0].form == "text"

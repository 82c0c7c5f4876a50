"""A user's own table as it comes: `;` or tab separators, decimal commas, a byte-order mark,
gzip, empty target cells, and leak warnings (a sorted integer id, a column equal to the
label). Each goes through the CLI: train → predict → eval --data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import DataConfig
from fcnet_cli.engine.data.csvformat import detect_separator, serving_format
from fcnet_cli.engine.data.tables import read_table

runner = CliRunner()
N = 60


def _rows(n: int = N, seed: int = 0) -> pl.DataFrame:
    """Two informative numeric features with decimals, a noise column and a class label
    that no single column predicts perfectly."""
    rng = np.random.default_rng(seed)
    w, h, z = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    label = np.where(w + h + 0.7 * rng.normal(size=n) > 0, "tall", "short")
    return pl.DataFrame({"width": np.round(w, 3), "height": np.round(h, 3),
                         "noise": np.round(z, 2), "label": label})


def _write(frame: pl.DataFrame, path: Path, sep: str = ",", comma: bool = False,
           bom: bool = False) -> Path:
    """`frame` as a CSV written by hand: any separator, decimal commas, a UTF-8 BOM."""
    def cell(v: object) -> str:
        text = "" if v is None else str(v)
        return text.replace(".", ",") if comma and isinstance(v, float) else text

    lines = [sep.join(frame.columns)] + [sep.join(cell(v) for v in row)
                                         for row in frame.iter_rows()]
    data = ("\ufeff" if bom else "") + "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _experiment(tmp_path: Path, csv: Path, name: str = "t", task: str | None = None,
                **data: object) -> Path:
    exp: dict = {"data": {"dataset": "csv", "path": csv.name, "target": "label",
                                        **data},
                 "model": {"hidden": [8]}, "training": {"epochs": 3, "device": "cpu"},
                 "output": {"dir": str(tmp_path / "runs")}}
    if task:
        exp["task"] = task
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def _train(path: Path) -> tuple[str, dict]:
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    run = sorted(p for p in (path.parent / "runs" / path.stem).iterdir() if p.name != "latest")
    return result.output, json.loads((run[-1] / "summary.json").read_text())


def _run_dir(tmp_path: Path, name: str) -> str:
    return str(tmp_path / "runs" / name / "latest")


def _error(result: object) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _predict(tmp_path: Path, name: str, data: Path) -> pl.DataFrame:
    out = tmp_path / f"{name}-{data.stem}.csv"
    result = runner.invoke(app, ["predict", _run_dir(tmp_path, name), str(data), "--proba",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    return pl.read_csv(out)


# ----------------------------------------------------------------------------- separators


def test_detect_separator_from_the_header_line() -> None:
    assert detect_separator(b"a,b,c") == ","
    assert detect_separator(b"a;b;c") == ";"
    assert detect_separator(b"a\tb\tc") == "\t"
    assert detect_separator(b"a|b|c") == "|"
    assert detect_separator(b'"x,y";b;c') == ";"  # separators inside quotes do not count
    assert detect_separator(b"single") == ","
    assert detect_separator(b"a;b,c;d", preferred=",") == ","  # the model's, when present
    assert serving_format(b"a,b", ";", decimal_comma=True).decimal_comma is False  # never with ','
    assert serving_format(b"a;b", None, decimal_comma=True).separator == ";"


def test_semicolon_decimal_comma_and_bom_read_as_the_same_numbers(tmp_path: Path) -> None:
    frame = _rows()
    plain = read_table(_write(frame, tmp_path / "plain.csv"), "csv")
    euro = read_table(_write(frame, tmp_path / "euro.csv", ";", comma=True, bom=True), "csv",
                      decimal_comma=True)
    assert euro.columns == ["width", "height", "noise", "label"]  # no BOM in the first name
    assert euro.equals(plain)


def test_train_predict_eval_on_a_semicolon_file_with_decimal_commas(tmp_path: Path) -> None:
    frame = _rows()
    euro = _write(frame, tmp_path / "euro.csv", ";", comma=True, bom=True)
    plain = _write(frame, tmp_path / "plain.csv")
    _, s_euro = _train(_experiment(tmp_path, euro, "euro", decimal_comma=True))
    _, s_plain = _train(_experiment(tmp_path, plain, "plain"))
    # the same numbers, the same split and seed: the same run
    assert s_euro["test"]["loss"] == pytest.approx(s_plain["test"]["loss"], abs=1e-6)
    new = frame.drop("label").head(12)
    p_euro = _predict(tmp_path, "euro", _write(new, tmp_path / "new.csv", ";", comma=True))
    p_plain = _predict(tmp_path, "plain", _write(new, tmp_path / "new-plain.csv"))
    assert p_euro.height == 12
    np.testing.assert_allclose(p_euro["proba_tall"].to_numpy(),
                               p_plain["proba_tall"].to_numpy(), atol=1e-6)
    # a ','-separated file of the same rows, for the ';'-trained model: detected
    p_mixed = _predict(tmp_path, "euro", tmp_path / "new-plain.csv")
    np.testing.assert_allclose(p_mixed["proba_tall"].to_numpy(),
                               p_euro["proba_tall"].to_numpy(), atol=1e-6)
    result = runner.invoke(app, ["eval", _run_dir(tmp_path, "euro"), "--data", str(euro),
                                 "--json"])
    assert result.exit_code == 0, result.output
    on_file = json.loads(result.stdout)
    result = runner.invoke(app, ["eval", _run_dir(tmp_path, "plain"), "--data", str(plain),
                                 "--json"])
    assert on_file["loss"] == pytest.approx(json.loads(result.stdout)["loss"], abs=1e-6)
    assert on_file["n"] == N


def test_tab_separated_and_gzip_semicolon(tmp_path: Path) -> None:
    frame = _rows()
    tab = _write(frame, tmp_path / "tab.csv", "\t")
    gz = _write(frame, tmp_path / "semi.csv.gz", ";", comma=True)
    _, s_tab = _train(_experiment(tmp_path, tab, "tab"))
    _, s_gz = _train(_experiment(tmp_path, gz, "gz", decimal_comma=True))  # detected
    assert s_tab["test"]["loss"] == pytest.approx(s_gz["test"]["loss"], abs=1e-6)
    p_tab = _predict(tmp_path, "tab", _write(frame.drop("label").head(5), tmp_path / "n.tsv.csv",
                                             "\t"))
    assert p_tab.height == 5
    result = runner.invoke(app, ["eval", _run_dir(tmp_path, "gz"), "--data", str(gz)])
    assert result.exit_code == 0, result.output
    assert f"{N} examples" in result.output


def test_a_header_read_as_one_column_names_the_separator(tmp_path: Path) -> None:
    euro = _write(_rows(), tmp_path / "euro.csv", ";")
    path = _experiment(tmp_path, euro, separator=",")
    line = _error(runner.invoke(app, ["train", str(path)]))
    assert 'data.separator: ";"' in line, line
    assert "one column" in line, line
    assert not (tmp_path / "runs").exists()


def test_decimal_commas_without_the_setting_are_named(tmp_path: Path) -> None:
    euro = _write(_rows(), tmp_path / "euro.csv", ";", comma=True)
    line = _error(runner.invoke(app, ["train", str(_experiment(tmp_path, euro))]))
    assert "column 'width'" in line and "data.decimal_comma: true" in line, line
    assert not (tmp_path / "runs").exists()


def test_decimal_comma_with_a_comma_separator_is_a_config_error(tmp_path: Path) -> None:
    path = _experiment(tmp_path, tmp_path / "x.csv", separator=",", decimal_comma=True)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "decimal_comma" in result.output and "separator" in result.output
    plain = _write(_rows(), tmp_path / "plain.csv")  # ',' detected: refused when read
    line = _error(runner.invoke(app, ["train", str(_experiment(tmp_path, plain,
                                                               decimal_comma=True))]))
    assert "data.decimal_comma" in line, line
    assert DataConfig(separator="tab").separator == "\t"


# ----------------------------------------------------------------------------- missing target


def _with_empty_targets(frame: pl.DataFrame, rows: list[int]) -> pl.DataFrame:
    """`frame` with the label of the given 1-based rows emptied."""
    idx = pl.int_range(1, pl.len() + 1)
    return frame.with_columns(pl.when(idx.is_in(rows)).then(None).otherwise(pl.col("label"))
                              .alias("label"))


def test_missing_target_error_counts_the_rows(tmp_path: Path) -> None:
    empty = [8, 19, 33, 40, 41, 50]
    csv = _write(_with_empty_targets(_rows(), empty), tmp_path / "t.csv")
    line = _error(runner.invoke(app, ["train", str(_experiment(tmp_path, csv))]))
    assert "target 'label' is empty in 6 rows (rows 8, 19, 33, …)" in line, line
    assert "data.missing_target: drop" in line, line
    assert not (tmp_path / "runs").exists()


def test_missing_target_drop_trains_and_says_how_many(tmp_path: Path) -> None:
    csv = _write(_with_empty_targets(_rows(), [3, 9, 27]), tmp_path / "t.csv")
    output, summary = _train(_experiment(tmp_path, csv, missing_target="drop"))
    note = "dropped 3 rows whose target 'label' is empty (rows 3, 9, 27"
    assert note in " ".join(output.split()), output  # the notice wraps at word boundaries
    assert any(note in n for n in summary["notices"])
    train_line = next(ln for ln in output.splitlines() if ln.startswith("training"))
    split_counts = train_line.split(":", 1)[1]  # "training [8 members] on cpu: 33 train / ..."
    counts = [int(w) for w in split_counts.replace(",", " ").split() if w.isdigit()][:3]
    assert sum(counts) == N - 3, train_line


def test_an_error_after_dropping_says_how_rows_are_counted(tmp_path: Path) -> None:
    frame = _with_empty_targets(_rows(), [2, 4]).with_columns(pl.col("width").cast(pl.String))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 30).then(pl.lit("wide"))
                               .otherwise(pl.col("width")).alias("width"))
    path = _experiment(tmp_path, _write(frame, tmp_path / "t.csv"), missing_target="drop")
    line = _error(runner.invoke(app, ["train", str(path)]))
    assert "'wide' is not a number" in line, line
    assert "rows counted without the 2 dropped for an empty target" in line, line


def test_regression_target_with_empty_cells_drop(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, 2))
    y = (3 * x[:, 0] - x[:, 1] + rng.normal(size=N)).round(3)
    frame = pl.DataFrame({"a": x[:, 0].round(3), "b": x[:, 1].round(3), "label": y})
    frame = _with_empty_targets(frame, [2, 5, 7, 11])
    csv = _write(frame, tmp_path / "mpg.csv", ";", comma=True)
    line = _error(runner.invoke(app, ["train", str(_experiment(
        tmp_path, csv, task="regression", decimal_comma=True))]))
    assert "is empty in 4 rows (rows 2, 5, 7, …)" in line, line
    output, summary = _train(_experiment(tmp_path, csv, task="regression",
                                         decimal_comma=True, missing_target="drop"))
    assert any("dropped 4 rows" in n for n in summary["notices"]), summary["notices"]
    assert summary["test"]["metrics"]["r2"] > -1  # a finished regression with finite metrics
    result = runner.invoke(app, ["eval", _run_dir(tmp_path, "t"), "--split", "test"])
    assert result.exit_code == 0, result.output  # the split is rebuilt with the same drop
    assert "dropped 4 rows" in result.output


# ----------------------------------------------------------------------------- leak warnings


def _leak_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if "data.drop: [" in ln]


def test_a_sorted_integer_id_is_warned(tmp_path: Path) -> None:
    frame = _rows().sort("label").with_row_index("id", offset=1)
    csv = _write(frame, tmp_path / "t.csv", ";")
    output, summary = _train(_experiment(tmp_path, csv))
    notes = [n for n in summary["notices"] if "data.drop" in n]
    assert len(notes) == 1, summary["notices"]
    assert "column 'id'" in notes[0] and "data.drop: [id]" in notes[0]
    assert "column 'id'" in output


def test_a_column_equal_to_the_label_is_warned(tmp_path: Path) -> None:
    frame = _rows().with_columns(copy=pl.col("label").str.to_uppercase(),
                                 code=(pl.col("label") == "tall").cast(pl.Int64) * 7 + 1)
    output, summary = _train(_experiment(tmp_path, _write(frame, tmp_path / "t.csv")))
    notes = [n for n in summary["notices"] if "data.drop" in n]
    assert len(notes) == 2, notes
    assert "column 'copy' alone predicts the target 'label' perfectly" in notes[0]
    assert "data.drop: [copy]" in notes[0] and "data.drop: [code]" in notes[1]
    assert len(_leak_lines(output)) >= 2


def test_regression_column_equal_to_the_target_is_warned(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N, 2)).round(3)
    y = (x[:, 0] + rng.normal(size=N)).round(3)
    frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": y, "label_km": y * 1.6 + 2})
    _, summary = _train(_experiment(tmp_path, _write(frame, tmp_path / "t.csv"),
                                    task="regression"))
    notes = [n for n in summary["notices"] if "data.drop" in n]
    assert len(notes) == 1 and "column 'label_km'" in notes[0], notes


def test_a_normal_table_gives_no_leak_warning(tmp_path: Path) -> None:
    """Negative control: informative but imperfect columns, an unsorted integer column."""
    rng = np.random.default_rng(3)
    frame = _rows().with_columns(count=pl.Series(rng.permutation(N)),
                                 color=pl.Series(["red", "blue", "green"] * (N // 3)))
    output, summary = _train(_experiment(tmp_path, _write(frame, tmp_path / "t.csv")))
    assert not [n for n in summary["notices"] if "data.drop" in n], summary["notices"]
    assert not _leak_lines(output)

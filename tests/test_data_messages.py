"""Data errors in the user's terms, through the CLI: the line, the column and the cell as
written in the CSV file (never a numpy repr), and an empty cell called an empty cell."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app

runner = CliRunner()


def _csv_experiment(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "t.csv").write_text("color,size,label\n" + "\n".join(rows) + "\n")
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"dataset": "csv", "path": "t.csv", "target": "label"},
        "training": {"epochs": 1, "device": "cpu"},
        "output": {"dir": str(tmp_path / "runs")}}))
    return path


def _one_error(result: object) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "np.str_" not in lines[0] and "Traceback" not in lines[0]
    return lines[0]


def _numbers(n: int) -> list[str]:
    return [f"{i % 5}.5,{i},{'a' if i % 2 else 'b'}" for i in range(n)]


def test_a_word_in_a_numeric_column(tmp_path: Path) -> None:
    path = _csv_experiment(tmp_path, ["blue,1,a", *_numbers(20)])
    line = _one_error(runner.invoke(app, ["train", str(path)]))
    assert "line 2" in line and "column 'color'" in line, line
    assert "'blue' is not a number" in line, line
    assert not (tmp_path / "runs").exists()


def test_an_empty_cell(tmp_path: Path) -> None:
    path = _csv_experiment(tmp_path, [*_numbers(20), "1.5,,a"])
    line = _one_error(runner.invoke(app, ["train", str(path)]))
    assert "'size'" in line, line
    assert "empty cell" in line or "missing value" in line, line
    assert "'' is not a number" not in line, line

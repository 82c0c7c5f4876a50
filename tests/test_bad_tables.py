"""Every bad table input: exit 2, one line naming the file, row and column, nothing created."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcnet_cli.cli import app


def _rows(n: int = 40, extra: str = "") -> str:
    return "".join(f"{i},{i % 3},{'xy'[i % 2]}{extra}\n" for i in range(n))


GOOD = "a,b,label\n" + _rows()
CASES: dict[str, tuple[str, str, str]] = {
    # name: (file text, extra YAML under data:, expected text in the one error line)
    "header_only": ("a,b,label\n", "", "d.csv: data set is empty (0 rows)"),
    "one_column": ("label\n" + "x\ny\n" * 10, "", "d.csv: no feature columns besides the "
                                                  "target (label)"),
    "duplicate": ("a,a,label\n" + _rows(), "", "d.csv: duplicate column name(s) 'a'"),
    "feature_typo": (GOOD, "features: [a, bb]", "data.features: no column 'bb'; did you "
                                               "mean 'b'?"),
    "drop_typo": (GOOD, "drop: [idd]", "data.drop: no column 'idd'"),
    "categorical_typo": (GOOD, "categorical: [bee]", "data.categorical: no column 'bee'"),
    "target_typo": (GOOD, "target: lable", "data.target: no column 'lable'; did you mean "
                                          "'label'?"),
    "target_in_features": (GOOD, "features: [a, label]", "data.features: 'label' is the "
                                                        "target"),
    "non_numeric": ("a,b,label\n" + _rows().replace("17,2,y", "17,two,y"), "",
                    "d.csv: row 18 (line 19), column 'b': 'two' is not a number"),
    "all_missing": ("a,b,c,label\n" + "".join(f"{i},{i % 3},,{'xy'[i % 2]}\n"
                                              for i in range(40)), "missing: mean",
                    "d.csv: column 'c' is empty in all 40 rows; add it to data.drop"),
    "too_many_categories": ("a,id,label\n" + "".join(f"{i},u{i},{'xy'[i % 2]}\n"
                                                     for i in range(40)), "max_categories: 10",
                            "column 'id' has 24 categories in the training split "
                            "(data.max_categories is 10); if it is an id, add it to data.drop"),
    "not_parquet": ("a,b,label\n1,2,x\n", "dataset: parquet", "not a Parquet file"),
    "regression_string_target": ("a,b,label\n" + _rows(), "", "task: regression needs a "
                                                             "numeric target; column 'label'"),
}


def _run(tmp_path: Path, text: str, data_yaml: str, top: str = "",
         name: str = "d.csv") -> tuple[int, str]:
    data = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(data, "wt") as f:
            f.write(text)
    else:
        data.write_text(text)
    extra = "".join(f"\n  {line}" for line in data_yaml.split("; ") if line)
    dataset = "" if "dataset:" in data_yaml else "\n  dataset: csv"
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"{top}data:{dataset}\n  path: {name}{extra}\nmodel: {{hidden: [4]}}\n"
                   f"training: {{epochs: 1, device: cpu}}\noutput: {{dir: {tmp_path}/runs}}\n")
    out = CliRunner().invoke(app, ["train", str(cfg), "--quiet"])
    return out.exit_code, out.output


@pytest.mark.parametrize("case", list(CASES))
def test_bad_table_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    text, data_yaml, needle = CASES[case]
    top = "task: regression\n" if case == "regression_string_target" else ""
    code, output = _run(tmp_path, text, data_yaml, top,
                        "d.parquet" if case == "not_parquet" else "d.csv")
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert needle in lines[0], output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("weights, needle", [
    ("[1.0, 2.0, 3.0]", "loss.class_weights: 3 weights for 2 classes"),
    ("[1.0, 0.0]", "class_weights must be one number > 0 per class"),
])
def test_bad_class_weights_exit_2(tmp_path: Path, weights: str, needle: str) -> None:
    code, output = _run(tmp_path, GOOD, "", f"loss: {{class_weights: {weights}}}\n")
    assert code == 2 and needle in output and len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "runs").exists()


def test_gzipped_csv_simply_works(tmp_path: Path) -> None:
    code, output = _run(tmp_path, GOOD, "", name="d.csv.gz")
    assert code == 0, output
    assert (Path(output.strip()) / "checkpoints" / "best" / "meta.json").is_file()

"""`fcnet schema`, `validate --explain` and `eval` at 80 columns and piped: every line fits,
nothing is cut, no word, number or name is split, types read as a user writes them."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import describe_schema
from fcnet_cli.config.schema import DataConfig, TrainingConfig
from fcnet_cli.config.typetext import type_text, value_text

runner = CliRunner()


def _joined(text: str) -> str:
    return " ".join(text.split())


def _words(text: str) -> set[str]:
    return set(text.split())


@pytest.mark.parametrize("columns", ["80", None])  # a narrow terminal, and a bare pipe
def test_schema_fits_and_is_whole(columns: str | None) -> None:
    env = {"COLUMNS": columns} if columns else {}
    result = runner.invoke(app, ["schema"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    width = int(columns or 120)
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert "…" not in result.stdout
    text = _joined(result.stdout)
    words = _words(result.stdout)
    for path, type_, default, description in describe_schema():
        assert path in words  # the field name whole, on one line
        assert _joined(description) in text  # every description whole after joining lines
        assert f"(default {default})" in text
        assert _joined(type_) in text
    # a long sentence, cut mid-word before: its words are all there, in order
    assert ("fraction of the training pool held out for validation" in text)


def test_types_read_as_users_write_them() -> None:
    fields = {**{f"data.{k}": v for k, v in DataConfig.model_fields.items()},
              **{f"training.{k}": v for k, v in TrainingConfig.model_fields.items()}}
    assert type_text(fields["training.epochs"]) == "int ≥ 1"
    assert type_text(fields["data.test_fraction"]) == "float in [0, 1)"
    assert type_text(fields["data.val_fraction"]) == "float in (0, 1)"
    assert type_text(fields["training.seeds"]) == "int in [1, 256]"
    assert type_text(fields["data.drop"]) == "list of text"
    assert type_text(fields["data.normalize"]) == "one of: standard, minmax, none"
    assert type_text(fields["training.grad_clip"]) == "float > 0 or null"
    rows = {r[0]: r for r in describe_schema()}
    assert rows["task"][1] == "one of: classification, regression, null"
    assert rows["model.hidden"][1:3] == ("list of int, at most 100", "[128, 64]")
    assert rows["loss.class_weights"][1] == "one of: none, balanced; or list of float"
    assert [value_text(v) for v in (None, True, "digits", 0.01, [1, 2])] == [
        "null", "true", "digits", "0.01", "[1, 2]"]


def test_explain_fits_80_columns(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("optimizer:\n  name: adam\n  momentum: 0.9\nmodel:\n  hidden: [32, 16]\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path), "--explain"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # every line fits but those naming the file, a path which is never split
    assert all(len(line) <= 80 for line in lines if str(tmp_path) not in line)
    text = _joined(result.stdout)
    assert "optimizer.name = adam" in text and "model.hidden = [32, 16]" in text
    assert "(default [128, 64])" in text
    for _, type_, _, description in describe_schema():
        assert _joined(f"{description} ({type_})" if description else type_) in text
    # no type is split: "float in [0, 1)" and "int ≥ 1" stay on one line
    assert any("(float in [0, 1))" in line for line in lines)
    assert not any(re.search(r"(float in|int|≥)$", line) for line in lines)


def test_piped_eval_keeps_counts_whole_and_wraps_warnings(tmp_path: Path) -> None:
    from fcnet_cli import load_experiment, train
    from tests.test_binary import binary_experiment

    exp = binary_experiment(tmp_path, "val_loss", epochs=1)
    run = train(load_experiment(exp)).run_dir
    result = runner.invoke(app, ["eval", str(run)], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("(n = 48)" in line for line in lines)  # never "(n =" / "48)"
    assert not any(line.rstrip().endswith(("(n =", "(n")) for line in lines)
    # one epoch on an imbalanced table: the model predicts the majority class
    head = next(i for i, ln in enumerate(lines) if ln.startswith("warning:"))
    end = next(i for i in range(head, len(lines)) if lines[i].rstrip().endswith("balanced"))
    block = lines[head:end + 1]
    assert len(block) > 1 and all(len(line) <= 60 for line in block)
    # each line ends on a whole word: joined with spaces, it is the one-line message
    joined = _joined("\n".join(block))
    assert "the model may just predict the majority class" in joined
    assert joined.endswith("or set loss.class_weights: balanced")

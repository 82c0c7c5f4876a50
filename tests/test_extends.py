"""`extends:` in experiment files (and sweep bases): deep merge, lists replace, order, relative
paths, cycles and missing files at file:line, and `fcnet validate --explain` sources."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import ConfigError, load_experiment, load_source
from fcnet_cli.sweep.load import load_sweep

runner = CliRunner()
BASE = """\
data:
  dataset: iris
  normalize: minmax
model:
  hidden: [32, 16, 8]
  activation: tanh
optimizer:
  lr: 0.2
  momentum: 0.5
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_deep_merges_and_lists_replace(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", BASE)
    child = _write(tmp_path / "child.yaml",
                   "extends: base.yaml\nmodel:\n  hidden: [4]\noptimizer:\n  lr: 0.05\n")
    exp = load_experiment(child)
    assert exp.model.hidden == [4]  # the list is replaced, not merged element-wise
    assert exp.model.activation == "tanh"  # a sibling key of the base survives
    assert (exp.optimizer.lr, exp.optimizer.momentum) == (0.05, 0.5)
    assert exp.data.normalize == "minmax"
    assert exp.output.name == "child"  # the default name is the top file's stem


def test_a_list_of_files_applies_in_order_and_the_file_itself_wins(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "optimizer: {lr: 0.1, momentum: 0.9}\nmodel: {hidden: [8]}\n")
    _write(tmp_path / "b.yaml", "optimizer: {lr: 0.3}\n")
    top = _write(tmp_path / "top.yaml",
                 "extends: [a.yaml, b.yaml]\ndata: {dataset: iris}\nmodel: {hidden: [2]}\n")
    exp = load_experiment(top)
    assert (exp.optimizer.lr, exp.optimizer.momentum, exp.model.hidden) == (0.3, 0.9, [2])
    top.write_text("extends: [b.yaml, a.yaml]\n")
    assert load_experiment(top).optimizer.lr == 0.1


def test_chains_resolve_paths_relative_to_each_file(tmp_path: Path) -> None:
    _write(tmp_path / "shared" / "data.csv", "a,label\n1,x\n2,y\n")
    _write(tmp_path / "shared" / "root.yaml", "data: {dataset: csv, path: data.csv}\n")
    _write(tmp_path / "shared" / "mid.yaml", "extends: root.yaml\ntraining: {epochs: 3}\n")
    top = _write(tmp_path / "exps" / "top.yaml",
                 "extends: ../shared/mid.yaml\ntraining: {batch_size: 8}\n")
    exp = load_experiment(top)
    assert exp.data.path == str((tmp_path / "shared" / "data.csv").resolve())
    # data.root was written by no file: relative to the top file, as without extends
    assert exp.data.root == str((tmp_path / "exps" / "data").resolve())
    assert (exp.training.epochs, exp.training.batch_size) == (3, 8)


def test_a_cycle_is_an_error_at_the_extends_line(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", "data: {dataset: iris}\nextends: b.yaml\n")
    _write(tmp_path / "b.yaml", "# b\nextends: [a.yaml]\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(a)
    (problem,) = err.value.problems
    assert problem.startswith(f"{tmp_path / 'b.yaml'}:2: extends: a.yaml: extends itself")
    assert problem.endswith(f"{a.resolve()} -> {(tmp_path / 'b.yaml').resolve()} -> "
                            f"{a.resolve()})")
    _write(a, "extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml:1: extends: a\.yaml: extends itself"):
        load_experiment(a)


def test_missing_files_and_bad_values_are_errors_with_file_and_line(tmp_path: Path) -> None:
    top = _write(tmp_path / "top.yaml", "data: {dataset: iris}\nextends:\n  - nope.yaml\n"
                                        "  - also/missing.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(top)
    assert err.value.problems == [
        f"{top}:3: extends: nope.yaml: no such file ({tmp_path / 'nope.yaml'})",
        f"{top}:4: extends: also/missing.yaml: no such file "
        f"({tmp_path / 'also' / 'missing.yaml'})"]
    _write(top, "extends: {file: a.yaml}\n")
    with pytest.raises(ConfigError, match=r"top\.yaml:1: extends: expected a file path or a "
                                          r"list of paths"):
        load_experiment(top)


def test_a_bad_value_is_reported_in_the_file_that_wrote_it(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.yaml", "data: {dataset: iris}\noptimizer:\n  lr: -1\n")
    top = _write(tmp_path / "top.yaml", "extends: base.yaml\nmodel:\n  hiden: [3]\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(top)
    assert sorted(err.value.problems) == sorted([
        f"{base}:3: optimizer.lr: Input should be greater than 0 (got -1)",
        f"{top}:3: model.hiden: unknown key; did you mean 'hidden'?"])
    # a value the file overrides is no longer the base's problem
    _write(top, "extends: base.yaml\noptimizer:\n  lr: 0.1\n")
    assert load_experiment(top).optimizer.lr == 0.1


def test_validate_shows_the_resolved_config_and_explains_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = _write(tmp_path / "base.yaml", BASE)
    top = _write(tmp_path / "top.yaml", "extends: base.yaml\noptimizer:\n  lr: 0.05\n")
    shown = runner.invoke(app, ["validate", str(top)])
    assert shown.exit_code == 0, shown.output
    printed = yaml.safe_load(shown.stdout)
    assert printed["model"]["hidden"] == [32, 16, 8] and printed["optimizer"]["lr"] == 0.05
    assert "extends" not in printed
    source = load_source(top, ["training.epochs=2"])
    from fcnet_cli.config import explain, validate

    sources = explain(validate(source), source)
    assert sources["optimizer.lr"] == f"{top}:3"
    assert sources["optimizer.momentum"] == f"{base}:9"
    assert sources["model.hidden"] == f"{base}:5"
    assert sources["training.epochs"] == "--set training.epochs"
    assert sources["training.batch_size"] == "default"
    monkeypatch.chdir(tmp_path)  # files named as given: short enough for the table
    result = runner.invoke(app, ["validate", "top.yaml", "--explain", "--set", "training.epochs=2"],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {ln.split()[0]: ln for ln in result.stdout.splitlines() if ln.strip()}
    assert "base.yaml:9" in rows["optimizer.momentum"]
    assert "top.yaml:3" in rows["optimizer.lr"]
    assert "--set training.epochs" in rows["training.epochs"]
    assert "(default)" in rows["training.seed"]
    # left out, and decided from the data by the default rule once it is loaded
    assert "auto: resolved from the data" in rows["training.batch_size"]


def test_sweep_base_uses_extends(tmp_path: Path) -> None:
    runs = (tmp_path / "runs").as_posix()
    _write(tmp_path / "exps" / "base.yaml", BASE + f"output: {{dir: {runs}}}\n")
    _write(tmp_path / "exps" / "fast.yaml", "extends: base.yaml\ntraining: {epochs: 2}\n")
    by_file = _write(tmp_path / "s1.yaml", "base: exps/fast.yaml\nparameters:\n"
                                           "  optimizer.lr: [0.1, 0.2]\n")
    sweep = load_sweep(by_file)
    assert (sweep.base_exp.training.epochs, sweep.base_exp.optimizer.momentum) == (2, 0.5)
    inline = _write(tmp_path / "s2.yaml", "base:\n  extends: exps/fast.yaml\n"
                                          "  training: {epochs: 4}\nparameters:\n"
                                          "  optimizer.lr: [0.1, 0.2]\n")
    sweep = load_sweep(inline)
    assert (sweep.base_exp.training.epochs, sweep.base_exp.model.hidden) == (4, [32, 16, 8])
    _write(inline, "base:\n  extends: exps/gone.yaml\nparameters:\n  optimizer.lr: [0.1]\n")
    with pytest.raises(ConfigError, match=r"s2\.yaml:2: extends: exps/gone\.yaml: no such "
                                          r"file"):
        load_sweep(inline)

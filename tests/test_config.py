"""Unit tests of the schema, YAML loading and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnet_cli.config import (
    ConfigError,
    Experiment,
    apply_overrides,
    describe_schema,
    layout_key,
    load_experiment,
    load_yaml,
)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_scientific_notation_is_a_float() -> None:
    data, lines = load_yaml("a: 1e-3\nb: 2E5\nc: 1.5e+2\nd: 10\n")
    assert data == {"a": 0.001, "b": 200000.0, "c": 150.0, "d": 10}
    assert isinstance(data["b"], float) and isinstance(data["d"], int)
    assert lines["c"] == 3


def test_defaults_name_and_paths_resolve_against_the_file(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, "data: {dataset: csv, path: sub/d.csv}\n"))
    assert exp.output.name == "exp"
    assert exp.data.path == str((tmp_path / "sub" / "d.csv").resolve())
    assert exp.model.hidden == [128, 64] and exp.optimizer.name == "sgd"


def test_overrides_are_yaml_scalars_validated_like_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "optimizer: {lr: 0.1}\n")
    exp = load_experiment(p, ["optimizer.lr=1e-2", "model.hidden=[32, 16]",
                              "training.early_stopping.patience=3"])
    assert exp.optimizer.lr == 0.01 and exp.model.hidden == [32, 16]
    assert exp.training.early_stopping.patience == 3
    with pytest.raises(ConfigError) as err:
        load_experiment(p, ["optimizer.lr=-1", "model.hiden=[3]"])
    assert sorted(err.value.problems) == [
        "--set model.hiden: unknown key; did you mean 'hidden'?",
        "--set optimizer.lr: Input should be greater than 0 (got -1)",
    ]


def test_apply_overrides_does_not_touch_the_input() -> None:
    raw = {"optimizer": {"lr": 0.1}}
    out, touched = apply_overrides(raw, ["optimizer.momentum=0.9"])
    assert raw == {"optimizer": {"lr": 0.1}}
    assert out == {"optimizer": {"lr": 0.1, "momentum": 0.9}}
    assert touched == {"optimizer.momentum"}


def test_errors_name_file_line_path_and_value(tmp_path: Path) -> None:
    p = write(tmp_path, "model:\n  hidden: [64, 0]\noptimizer:\n  momentum: 1.0\n"
                        "  nesterov: true\nscheduler:\n  name: multistep\n"
                        "  milestones: [5, 3]\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(p)
    text = "\n".join(err.value.problems)
    assert f"{p}:2: model.hidden: layer widths must be > 0 (got [64, 0])" in text
    assert f"{p}:4: optimizer.momentum: Input should be less than 1 (got 1.0)" in text
    assert f"{p}:8: scheduler.milestones: milestones must be increasing" in text
    assert len(err.value.problems) == 3  # nesterov is judged only once momentum is valid


def test_unknown_top_level_key_reports_the_key_line(tmp_path: Path) -> None:
    p = write(tmp_path, "modle:\n  hidden: [3]\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(p)
    assert err.value.problems == [f"{p}:1: modle: unknown key; did you mean 'model'?"]


def test_layout_key_separates_what_cannot_share_a_population() -> None:
    a = Experiment()
    b = Experiment.model_validate({"optimizer": {"lr": 0.5, "momentum": 0.9},
                                   "training": {"seed": 4}, "model": {"dropout": 0.3}})
    c = Experiment.model_validate({"model": {"hidden": [32]}})
    assert layout_key(a) == layout_key(b)
    assert layout_key(a) != layout_key(c)


def test_schema_documents_every_field() -> None:
    rows = describe_schema()
    paths = {r[0] for r in rows}
    assert {"optimizer.momentum", "scheduler.patience", "training.early_stopping.monitor",
            "regularization.strength", "data.split_seed"} <= paths
    assert all(r[3] for r in rows), [r[0] for r in rows if not r[3]]

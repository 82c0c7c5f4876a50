"""Sweep specs without training: parameter forms, conditional parameters, exact grids, errors
that exit 2 before any trial exists, storage URLs that fail fast."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import ConfigError
from fcnet_cli.sweep.load import load_sweep
from fcnet_cli.sweep.space import suggest_point
from fcnet_cli.sweep.spec import schema_defaults

runner = CliRunner()
BASE: dict[str, Any] = {
    "data": {"dataset": "iris"}, "model": {"hidden": [8]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "training": {"epochs": 2, "batch_size": 16, "device": "cpu"},
}


def write_sweep(tmp_path: Path, parameters: dict[str, Any], **spec: Any) -> Path:
    base = {**BASE, "output": {"dir": str(tmp_path / "runs")}}
    doc = {"name": "s", "base": base, "method": "grid", **spec, "parameters": parameters}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def usage_error(args: list[str], *needles: str) -> list[str]:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), lines
    for needle in needles:
        assert needle in result.stderr, (needle, lines)
    return lines


# ---------------------------------------------------------------- grids


def test_grid_is_the_exact_product_with_switched_off_values_collapsed(tmp_path: Path) -> None:
    types, strengths, momenta = ["none", "l1", "l2"], [1e-4, 1e-2], [0.0, 0.5, 0.9]
    sweep = load_sweep(write_sweep(tmp_path, {
        "regularization.type": types, "regularization.strength": strengths,
        "optimizer.momentum": momenta}))
    expected = set()
    for t, s, m in itertools.product(types, strengths, momenta):
        point = {"regularization.type": t, "optimizer.momentum": m}
        if t != "none":  # strength only matters with a penalty
            point["regularization.strength"] = s
        expected.add(json.dumps(point, sort_keys=True))
    keys = [p.key for p in sweep.points]
    assert len(keys) == len(set(keys)) == len(expected) == 3 + 2 * 2 * 3
    assert set(keys) == expected
    assert sweep.total == 15


def test_grid_groups_layouts_and_spaces_log_ranges(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {
        "optimizer.lr": {"log_uniform": [1e-3, 1e-1], "num": 3},
        "model.hidden": [[4], [8, 4]],
        "training.batch_size": {"int": [16, 32], "step": 16}}))
    assert len(sweep.points) == 3 * 2 * 2
    lrs = sorted({p.params["optimizer.lr"] for p in sweep.points})
    assert lrs == pytest.approx([1e-3, 1e-2, 1e-1])
    layouts = [sweep.layouts[p.key] for p in sweep.points]
    # every layout is one contiguous run of points: the claims of a batch share it
    assert len(list(itertools.groupby(layouts))) == len(set(layouts)) == 4


def test_inactive_base_values_are_reset_so_points_validate(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9],
                                  "optimizer.nesterov": [True, False]})
    raw = yaml.safe_load(path.read_text())
    raw["base"]["optimizer"].update(momentum=0.9, nesterov=True)
    path.write_text(yaml.safe_dump(raw))
    sweep = load_sweep(path)
    # momentum 0: nesterov does not apply (and must be false); momentum 0.9: both values
    assert sorted(p.key for p in sweep.points) == sorted([
        json.dumps({"optimizer.momentum": 0.0}),
        json.dumps({"optimizer.momentum": 0.9, "optimizer.nesterov": True}),
        json.dumps({"optimizer.momentum": 0.9, "optimizer.nesterov": False})])
    exp = sweep.experiment(next(p for p in sweep.points if not p.params["optimizer.momentum"]))
    assert exp.optimizer.nesterov is False


def test_sampling_only_suggests_parameters_that_apply(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {
        "regularization.type": ["none", "l1", "elastic_net"],
        "regularization.strength": {"log_uniform": [1e-6, 1e-2]},
        "regularization.l1_ratio": {"uniform": [0.1, 0.9]}}, method="random", trials=40))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        point = suggest_point(trial, sweep.params, sweep.base_values, schema_defaults(), grid=False)
        kind = point.params["regularization.type"]
        seen.add(kind)
        expected = {"none": {"regularization.type"},
                    "l1": {"regularization.type", "regularization.strength"},
                    "elastic_net": set(point.params)}[kind]
        assert set(trial.params) == set(point.params) == expected
        sweep.experiment(point)  # validates
        study.tell(trial, 0.0)
    assert seen == {"none", "l1", "elastic_net"}


# ---------------------------------------------------------------- errors: exit 2, no trials


def test_unknown_parameter_key_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.lrr": [0.1], "optimizer.momentum": [0.0],
                                  "training.seed": [1, 2]})
    lines = usage_error(["sweep", str(path)], "parameters.optimizer.lrr: unknown parameter; "
                                              "did you mean 'optimizer.lr'?", "use `seeds:`")
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {path}:")
    assert not (tmp_path / "runs").exists()


def test_invalid_base_exits_2_and_creates_no_trial(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]})
    raw = yaml.safe_load(path.read_text())
    raw["base"]["optimizer"]["lr"] = -1
    raw["base"]["model"]["hiden"] = [3]
    path.write_text(yaml.safe_dump(raw))
    lines = usage_error(["sweep", str(path)], "optimizer.lr", "did you mean 'hidden'")
    assert len(lines) == 2
    assert not (tmp_path / "runs").exists()


def test_base_file_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(
        {**BASE, "output": {"dir": str(tmp_path / "runs")}}))
    path = tmp_path / "sw.yaml"
    path.write_text("base: base.yaml\nparameters:\n  optimizer.momentum: [0.0, 0.9]\n")
    sweep = load_sweep(path, ["seeds=2", "base.training.epochs=5"])
    assert (sweep.name, sweep.spec.seeds, sweep.base_exp.training.epochs) == ("sw", 2, 5)
    usage_error(["sweep", str(path), "--set", "base.training.epochs=0"],
                "--set base.training.epochs")
    usage_error(["sweep", str(path), "--set", "seed=2"], "did you mean 'seeds'")


@pytest.mark.parametrize(("parameters", "spec", "needle"), [
    ({"optimizer.momentum": {"uniform": [0.0, 1.0]}}, {"method": "random", "trials": 3},
     "parameters.optimizer.momentum: value 1.0: Input should be less than 1 (got 1.0)"),
    ({"optimizer.lr": {"log_uniform": [0.001, 0.1]}}, {}, "a grid needs a finite set"),
    ({"optimizer.lr": [0.1, 0.1]}, {}, "repeats a value"),
    ({"regularization.type": ["none", "l3"]}, {}, "grid points do not validate"),
    ({"optimizer.betas": [[0.9, 0.99]]}, {}, "has no effect: it needs optimizer.name is adam"),
    ({"optimizer.lr": {"uniform": [0.1, 0.01]}}, {"method": "tpe", "trials": 2},
     "low must be < high"),
    ({"optimizer.lr": [0.1]}, {"method": "tpe"}, "needs trials: N"),
    ({"optimizer.lr": [0.1]}, {"metric": "val_loss", "direction": "maximize"},
     "should be minimized"),
    ({"training.seeds": [1, 2]}, {}, "the sweep sets training.seeds itself: use `seeds:`"),
])
def test_bad_specs_exit_2(tmp_path: Path, parameters: dict[str, Any], spec: dict[str, Any],
                          needle: str) -> None:
    usage_error(["sweep", str(write_sweep(tmp_path, parameters, **spec))], needle)
    assert not (tmp_path / "runs").exists()


def test_a_base_with_training_seeds_is_refused_with_the_sweep_key_to_use(
        tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]})
    lines = usage_error(["sweep", str(path), "--set", "base.training.seeds=3"],
                        "base.training.seeds: a sweep does not use training.seeds (got 3): "
                        "set `seeds: 3` in the sweep file")
    assert len(lines) == 1
    assert not (tmp_path / "runs").exists()
    assert load_sweep(path, ["seeds=3"]).spec.seeds == 3  # the way it says


def test_resuming_with_a_changed_spec_is_refused(tmp_path: Path) -> None:
    from fcnet_cli.sweep.store import open_store

    open_store(load_sweep(write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]})))
    changed = load_sweep(write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.5]}))
    with pytest.raises(ConfigError, match="cannot resume sweep 's'"):
        open_store(changed)


# ---------------------------------------------------------------- storage URLs


def test_unreachable_storage_fails_fast_with_one_line(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0]})
    start = time.monotonic()
    result = runner.invoke(app, ["sweep", str(path), "--storage",
                                 "postgresql://fcnet:secret@127.0.0.1:9/fcnet"])
    assert time.monotonic() - start < 20
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot connect" in lines[0], lines
    assert "secret" not in result.output and "fcnet:***@" in lines[0]


def test_malformed_storage_url_exits_2(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0]})
    usage_error(["sweep", str(path), "--storage", "not-a-url"], "expected a database URL")
    usage_error(["sweep", str(path), "--storage", "nosuchdb://x/y"], "not a usable database")


def test_a_bad_sweep_file_reports_every_problem_in_one_pass(tmp_path: Path) -> None:
    runs = (tmp_path / "runs").as_posix()
    path = tmp_path / "bad.yaml"
    path.write_text(f"base:\n  data: {{dataset: iris}}\n  output: {{dir: {runs}}}\n"
                    "seeds: 0\n"
                    "parameters:\n"
                    "  optimizer.lrr: [0.1]\n"
                    "  regularization.type: [none, l3]\n"
                    "  model.hidden: [[8], [0]]\n")
    lines = usage_error(["sweep", str(path)])
    assert lines == [
        f"error: {path}:4: seeds: Input should be greater than 0 (got 0)",
        f"error: {path}:6: parameters.optimizer.lrr: unknown parameter; "
        "did you mean 'optimizer.lr'?",
        # in the order the grid meets them: (none, [8]) passes, (none, [0]) fails first
        f"error: {path}:8: parameters.model.hidden: 2 of 4 grid points do not validate: "
        "layer widths must be > 0 (got [0]) (e.g. regularization.type=\"none\", "
        "model.hidden=[0])",
        f"error: {path}:7: parameters.regularization.type: 2 of 4 grid points do not validate: "
        "Input should be 'none', 'l1', 'l2' or 'elastic_net' (got 'l3') "
        "(e.g. regularization.type=\"l3\", model.hidden=[8])",
    ]
    assert not (tmp_path / "runs").exists()


def test_points_are_values_set_on_the_validated_base(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"model.hidden": [[8, 4], [2]],
                                              "optimizer.momentum": [0.5]}))
    point = sweep.points[0]
    assert point.values() == {"model.hidden": [8, 4], "optimizer.momentum": 0.5}
    exp = sweep.experiment(point, seed_index=2, name="s-0000-seed2")
    assert (exp.model.hidden, exp.optimizer.momentum) == ([8, 4], 0.5)
    assert (exp.training.seed, exp.output.name) == (2, "s-0000-seed2")
    assert exp.optimizer.lr == 0.1 and exp.data.dataset == "iris"  # the rest is the base's
    assert sweep.base_exp.model.hidden == [8]  # the base is not changed


# ---------------------------------------------------------------- --set against parameters


def test_a_base_override_of_a_pinned_parameter_wins_with_a_note(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9], "training.epochs": [5]})
    sweep = load_sweep(path, ["base.training.epochs=1"])
    assert [p.key for p in sweep.params] == ["optimizer.momentum"]
    assert {sweep.experiment(p).training.epochs for p in sweep.points} == {1}
    assert len(sweep.notes) == 1
    assert "--set base.training.epochs=1 replaces the pinned parameter training.epochs: [5]" \
        in sweep.notes[0]
    # without the override the pin holds
    assert {load_sweep(path).experiment(p).training.epochs
            for p in load_sweep(path).points} == {5}


def test_a_base_override_of_a_swept_parameter_is_an_error(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]})
    lines = usage_error(["sweep", str(path), "--set", "base.optimizer.momentum=0.5"],
                        "optimizer.momentum is swept by the sweep file",
                        "--set parameters.optimizer.momentum=[...]")
    assert len(lines) == 1
    assert not (tmp_path / "runs").exists()


def test_parameters_can_be_set_one_at_a_time(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9], "training.epochs": [5]})
    sweep = load_sweep(path, ["parameters.training.epochs=[1]",
                              "parameters.optimizer.lr=[0.01, 0.1]"])
    got = {(e.training.epochs, e.optimizer.lr) for e in map(sweep.experiment, sweep.points)}
    assert got == {(1, 0.01), (1, 0.1)}
    assert len(sweep.points) == 4
    usage_error(["sweep", str(path), "--set", "parameters={}"], "one parameter at a time")


@pytest.mark.parametrize("second", [["base.training.epochs=3"],
                                    ["parameters.training.epochs=[3]"], []])
def test_a_changed_epoch_count_refuses_to_resume(tmp_path: Path, second: list[str]) -> None:
    from fcnet_cli.sweep.store import open_store

    path = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9], "training.epochs": [5]})
    open_store(load_sweep(path, ["base.training.epochs=2"]))
    open_store(load_sweep(path, ["base.training.epochs=2"]))  # the same: resumes
    with pytest.raises(ConfigError) as err:
        open_store(load_sweep(path, second))
    assert "configurations changed" in err.value.problems[0]
    assert any("training.epochs" in p for p in err.value.problems[1:])


def test_wrong_kind_of_file_is_named_in_one_line(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, {"optimizer.momentum": [0.0, 0.9]})
    for command in ("train", "validate"):
        lines = usage_error([command, str(sweep)], "this is a sweep file",
                            f"run `fcnet sweep {sweep}`")
        assert len(lines) == 1
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(yaml.safe_dump(BASE))
    lines = usage_error(["sweep", str(experiment)], "this is an experiment file",
                        f"run `fcnet train {experiment}`")
    assert len(lines) == 1

"""The `fcnet` command line through typer's CliRunner: happy paths, bad input, exit codes."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from fcnet_cli.cli import app
from fcnet_cli.config import dump_experiment, load_experiment
from fcnet_cli.errors import RunError
from fcnet_cli.events import EpochMetrics, RunResult

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _tiny(tmp_path: Path, extra: str = "") -> Path:
    runs = (tmp_path / "runs").as_posix()
    return _write(tmp_path, "data:\n  dataset: iris\nmodel:\n  hidden: [8]\n  ensemble: 1\n"
                            f"training:\n  epochs: 3\n  device: cpu\n{extra}"
                            f"output:\n  dir: {runs}\n", "tiny.yaml")


def _usage_error(result: Result, *needles: str, lines: int | None = None) -> list[str]:
    """Exit 2, nothing on stdout, `error:` lines on stderr containing every needle."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err and all(line.startswith("error: ") for line in err), err
    if lines is not None:
        assert len(err) == lines, err
    for needle in needles:
        assert needle in result.stderr, (needle, err)
    return err


# ---------------------------------------------------------------- help, validate, schema


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "eval", "validate", "schema", "--debug", "--version"):
        assert command in result.stdout


def test_version_names_package_torch_and_device() -> None:
    import torch

    import fcnet_cli

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"fcnet {fcnet_cli.__version__}"
    assert lines[1] == f"torch {torch.__version__}"
    # what `training.device: auto` picks
    assert lines[3].split()[:2] == ["device", "cuda" if torch.cuda.is_available() else "cpu"]


def test_help_does_not_import_torch() -> None:
    code = ("import sys\nfrom fcnet_cli.cli import main\nsys.argv = ['fcnet', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("no torch")


@pytest.mark.parametrize("command", ["train", "eval", "validate", "schema"])
def test_command_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"fcnet {command}" in result.stdout


def test_validate_prints_the_resolved_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  hidden: [8, 4]\noptimizer:\n  lr: 1e-3\n")
    result = runner.invoke(app, ["validate", str(path), "--set", "optimizer.momentum=0.9"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    expected = load_experiment(path, ["optimizer.momentum=0.9"])
    assert printed == yaml.safe_load(dump_experiment(expected))
    assert printed["model"]["hidden"] == [8, 4]
    assert printed["optimizer"] == {**printed["optimizer"], "lr": 0.001, "momentum": 0.9}
    assert printed["output"]["name"] == "exp"
    assert printed["data"]["root"] == str((tmp_path / "data").resolve())


def test_validate_explain_shows_values_and_schema(tmp_path: Path) -> None:
    path = _write(tmp_path, "optimizer:\n  momentum: 0.9\n")
    result = runner.invoke(app, ["validate", str(path), "--explain"])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if "optimizer.momentum" in ln)
    assert "= 0.9" in line and "(default 0.0)" in line  # value and default
    assert f"from {path}:2" in " ".join(result.stdout.split())  # where the value came from


def test_schema_lists_every_field() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    for field in ("optimizer.momentum", "optimizer.nesterov", "scheduler.milestones",
                  "regularization.strength", "training.early_stopping.patience"):
        assert field in result.stdout


def _run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_help_validate_and_schema_do_not_import_torch(tmp_path: Path) -> None:
    good = _write(tmp_path, "model:\n  hidden: [8]\n")
    bad = _write(tmp_path, "model:\n  hidden: [0]\n", "bad.yaml")
    code = f"""
import sys
from typer.testing import CliRunner
from fcnet_cli.cli import app
codes = [CliRunner().invoke(app, args).exit_code for args in (
    ["--help"], ["validate", {str(good)!r}], ["validate", {str(good)!r}, "--explain"],
    ["validate", {str(bad)!r}], ["schema"], ["train", "--help"])]
print(codes, "torch" in sys.modules)
"""
    assert _run_python(code) == "[0, 0, 0, 2, 0, 0] False"


def test_console_script_maps_exit_codes(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "fcnet"
    if not script.exists():
        pytest.skip("the package is not installed (pip install -e .)")
    bad = _write(tmp_path, "optimizer:\n  momentum: 1.0\n")
    proc = subprocess.run([str(script), "validate", str(bad)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1


# ---------------------------------------------------------------- bad experiment files


@pytest.mark.parametrize(("text", "needles"), [
    ("model:\n  hidden: [8\n", ["malformed YAML"]),
    ("", ["empty file"]),
    ("# only a comment\n", ["empty file"]),
    ("- data\n- model\n", ["top level must be a mapping", "list"]),
    ("just a string\n", ["top level must be a mapping", "str"]),
    ("model: {hidden: [8]\n", ["malformed YAML"]),
])
def test_unreadable_files(tmp_path: Path, text: str, needles: list[str]) -> None:
    result = runner.invoke(app, ["validate", str(_write(tmp_path, text))])
    _usage_error(result, *needles, lines=1)


@pytest.mark.parametrize("text", [
    'model: !!python/object/apply:os.system ["touch {marker}"]\n',
    'model: !!python/object/apply:os.system "touch {marker}"\n',
    "model:\n  hidden: !!python/object/new:os.system [\"touch {marker}\"]\n",
])
def test_python_tags_are_rejected_without_running_anything(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "MARKER"
    path = _write(tmp_path, text.format(marker=marker))
    _usage_error(runner.invoke(app, ["validate", str(path)]), "exp.yaml:", lines=1)
    assert not marker.exists()


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  hidden: [8]\n  activation: tanh\n  hidden: [4]\n")
    err = _usage_error(runner.invoke(app, ["validate", str(path)]), lines=1)
    assert "exp.yaml:4" in err[0] and "line 2" in err[0] and "model.hidden" in err[0]


def test_unknown_keys_at_every_depth_suggest_the_right_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "modle:\n  hidden: [8]\noptimizer:\n  momentun: 0.9\n"
                            "training:\n  early_stopping:\n    patiense: 3\n")
    _usage_error(runner.invoke(app, ["validate", str(path)]),
                 "modle", "did you mean 'model'", "optimizer.momentun",
                 "did you mean 'momentum'", "training.early_stopping.patiense",
                 "did you mean 'patience'", lines=3)


def test_wrong_types_one_line_each(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  hidden: eight\n  batch_norm: 'yes'\n"
                            "training:\n  epochs: '3'\n  batch_size: 1.5\n")
    _usage_error(runner.invoke(app, ["validate", str(path)]),
                 "exp.yaml:2: model.hidden", "model.batch_norm", "exp.yaml:5: training.epochs",
                 "training.batch_size", lines=4)


def test_nan_and_inf_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "optimizer:\n  lr: .nan\nloss:\n  label_smoothing: .inf\n"
                            "regularization:\n  strength: -.inf\n")
    _usage_error(runner.invoke(app, ["validate", str(path)]), "optimizer.lr",
                 "loss.label_smoothing", "regularization.strength", lines=3)


@pytest.mark.parametrize(("text", "where"), [
    ("model:\n  hidden: [8, 0]\n", "model.hidden"),
    ("optimizer:\n  lr: 0\n", "optimizer.lr"),
    ("optimizer:\n  lr: -0.1\n", "optimizer.lr"),
    ("optimizer:\n  momentum: 1.0\n", "optimizer.momentum"),
    ("model:\n  dropout: 1.0\n", "model.dropout"),
    ("optimizer:\n  nesterov: true\n", "nesterov needs momentum"),
    ("scheduler:\n  name: multistep\n  milestones: [10, 5]\n", "increasing"),
    ("training:\n  epochs: 0\n", "training.epochs"),
])
def test_out_of_range_values(tmp_path: Path, text: str, where: str) -> None:
    _usage_error(runner.invoke(app, ["validate", str(_write(tmp_path, text))]), where, lines=1)


@pytest.mark.parametrize(("text", "allowed"), [
    ("model:\n  activation: relux\n", ["'relu'", "'tanh'", "'silu'"]),
    ("optimizer:\n  name: adam2\n", ["'sgd'", "'adamw'", "'rmsprop'"]),
    ("scheduler:\n  name: cosin\n", ["'cosine'", "'plateau'", "'onecycle'"]),
    ("data:\n  dataset: mnistt\n", ["'digits'", "'mnist'", "'csv'"]),
])
def test_unknown_names_list_the_allowed_ones(tmp_path: Path, text: str,
                                             allowed: list[str]) -> None:
    _usage_error(runner.invoke(app, ["validate", str(_write(tmp_path, text))]), *allowed,
                 lines=1)


def test_all_problems_reported_together(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  hidden: [0]\n  activation: relux\n"
                            "optimizer:\n  lr: -1\n  momentun: 0.5\n")
    assert len(_usage_error(runner.invoke(app, ["validate", str(path)]))) == 4


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    _usage_error(result, "nope.yaml", "no such file", lines=1)


@pytest.mark.parametrize(("item", "needles"), [
    ("optimizer.lrr=0.1", ["--set optimizer.lrr", "did you mean 'lr'"]),
    ("optimizer.lr=abc", ["--set optimizer.lr", "abc"]),
    ("optimizer.lr=-1", ["--set optimizer.lr"]),
    ("optimizer.lr", ["expected dotted.key=value"]),
    ("=3", ["expected dotted.key=value"]),
    ("model.hidden=[8", ["--set model.hidden", "malformed"]),
    ("optimizer.lr.x=1", ["optimizer.lr"]),
])
def test_bad_set_items(tmp_path: Path, item: str, needles: list[str]) -> None:
    path = _write(tmp_path, "optimizer:\n  lr: 0.1\n")
    _usage_error(runner.invoke(app, ["validate", str(path), "--set", item]), *needles, lines=1)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  hidden: [0]\n")
    for args in (["--debug", "validate", str(path)], ["validate", "--debug", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert type(result.exception).__name__ == "ConfigError"


def test_keyboard_interrupt_outside_training_exits_130(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("fcnet_cli.config.load_source", interrupted)
    result = runner.invoke(app, ["validate", str(_write(tmp_path, "{}\n"))])
    assert result.exit_code == 130
    assert result.stderr == "error: interrupted\n"


def test_unexpected_errors_exit_1_with_one_line(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("fcnet_cli.config.load_source", broken)
    result = runner.invoke(app, ["validate", str(_write(tmp_path, "{}\n"))])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: disk on fire")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_train_needs_a_config_or_resume() -> None:
    _usage_error(runner.invoke(app, ["train"]), "--resume", lines=1)


def test_train_resume_needs_a_run_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "gone")])
    _usage_error(result, "gone", lines=1)


def test_train_rejects_a_bad_config_before_training(tmp_path: Path) -> None:
    path = _tiny(tmp_path)
    _usage_error(runner.invoke(app, ["train", str(path), "--set", "model.hidden=[0]"]),
                 "--set model.hidden", lines=1)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- train: outcomes and signals


def _fake_train(run_dir: Path, status: str, signals: tuple[int, ...] = (),
                reason: str | None = None):
    """A stand-in for fcnet_cli.engine.train.loop.train: emits one epoch, optionally signals
    itself."""
    from fcnet_cli.events import RunStart

    def fake(exp, *, callbacks=(), stop=None, resume=None):
        assert stop is not None and not stop.requested
        stop.mark_data_ready()  # as the engine does once the table is loaded
        for sig in signals:
            os.kill(os.getpid(), sig)  # the handler runs in this (main) thread right away
        m = EpochMetrics(0, 1, 0.5, 0.8, 0.6, 0.7, 0.1, 0.25)
        for cb in callbacks:
            cb.on_run_start(RunStart([exp.name], [str(run_dir)], 3, 2, 0, "cpu",
                                     90, 30, 30, 4, 3))
            cb.on_epoch_end([m])
        final = "interrupted" if stop.requested else status
        why = f"stopped by {stop.reason}" if stop.requested else reason
        return RunResult(exp.name, str(run_dir), final, [m], 1, "val_loss", reason=why)

    return fake


@pytest.mark.parametrize(("status", "code"), [
    ("completed", 0), ("early_stopped", 0), ("diverged", 3), ("failed", 1)])
def test_train_exit_code_follows_the_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            status: str, code: int) -> None:
    run_dir = tmp_path / "runs" / "tiny" / "r1"
    monkeypatch.setattr("fcnet_cli.engine.train.loop.train",
                        _fake_train(run_dir, status, reason="loss is nan at epoch 1"))
    result = runner.invoke(app, ["train", str(_tiny(tmp_path))])
    assert result.exit_code == code, result.output
    assert "epoch 1/3  train_loss 0.5000" in result.stdout
    assert status in result.stdout and str(run_dir) in result.stdout
    if status == "diverged":
        assert "loss is nan at epoch 1" in result.stdout


@pytest.mark.parametrize(("signals", "code", "name"), [
    ((signal.SIGINT,), 130, "SIGINT"),
    ((signal.SIGTERM,), 143, "SIGTERM"),
    ((signal.SIGTERM, signal.SIGINT), 143, "SIGTERM"),  # a second signal is only noted
    ((signal.SIGINT, signal.SIGINT, signal.SIGTERM), 130, "SIGINT"),
])
def test_signals_stop_training_and_print_the_resume_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals: tuple[int, ...], code: int,
        name: str) -> None:
    run_dir = tmp_path / "runs" / "tiny" / "r 1"
    monkeypatch.setattr("fcnet_cli.engine.train.loop.train",
                        _fake_train(run_dir, "completed", signals))
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    result = runner.invoke(app, ["train", str(_tiny(tmp_path))])
    assert result.exit_code == code, result.output
    assert f"interrupted (stopped by {name})" in result.stdout
    assert f"fcnet train --resume '{run_dir}'" in result.stderr
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_data_loads_stops_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: int, code: int) -> None:
    def loading(exp, *, callbacks=(), stop=None, resume=None):
        os.kill(os.getpid(), sig)  # before stop.mark_data_ready(): nothing written yet
        raise AssertionError("loading went on after the signal")

    monkeypatch.setattr("fcnet_cli.engine.train.loop.train", loading)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    result = runner.invoke(app, ["train", str(_tiny(tmp_path))])
    name = signal.Signals(sig).name
    assert result.exit_code == code, result.output
    assert result.stderr.strip() == (f"error: interrupted ({name}) while loading the data; "
                                     "no run was started")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not (tmp_path / "runs").exists()


def test_train_quiet_prints_only_the_run_dir(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "runs" / "tiny" / "r1"
    monkeypatch.setattr("fcnet_cli.engine.train.loop.train", _fake_train(run_dir, "completed"))
    result = runner.invoke(app, ["train", "-q", str(_tiny(tmp_path))])
    assert result.exit_code == 0
    assert result.stdout == f"{run_dir}\n"


def test_train_errors_become_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(exp, **kwargs):
        raise RunError("run directory is locked by another process")

    monkeypatch.setattr("fcnet_cli.engine.train.loop.train", fails)
    result = runner.invoke(app, ["train", str(_tiny(tmp_path))])
    assert result.exit_code == 1
    assert result.stderr == "error: run directory is locked by another process\n"
    result = runner.invoke(app, ["--debug", "train", str(_tiny(tmp_path))])
    assert isinstance(result.exception, RunError)


# ---------------------------------------------------------------- train and eval, end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run of the tiny iris experiment, shared by the eval tests."""
    tmp_path = tmp_path_factory.mktemp("trained")
    result = runner.invoke(app, ["train", str(_tiny(tmp_path))])
    assert result.exit_code == 0, result.output
    epochs = [ln for ln in result.stdout.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epochs] == ["1/3", "2/3", "3/3"]
    assert "completed" in result.stdout
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert str(run_dir) in result.stdout
    return run_dir


def test_train_writes_the_run_directory(trained: Path) -> None:
    for name in ("config.yaml", "metrics.csv", "summary.json"):
        assert (trained / name).is_file()
    assert (trained / "checkpoints" / "best").is_dir()
    assert yaml.safe_load((trained / "config.yaml").read_text())["training"]["epochs"] == 3


def test_eval_prints_tables(trained: Path) -> None:
    result = runner.invoke(app, ["eval", str(trained / "checkpoints" / "best")])
    assert result.exit_code == 0, result.output
    for text in ("split test", "accuracy", "precision", "recall", "confusion matrix",
                 "setosa", "virginica"):
        assert text in result.stdout


@pytest.mark.parametrize("split", ["test", "val", "train"])
def test_eval_json(trained: Path, split: str) -> None:
    result = runner.invoke(app, ["eval", str(trained / "checkpoints" / "best"), "--json",
                                 "--split", split])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["split"] == split
    assert 0.0 <= data["accuracy"] <= 1.0
    k = len(data["classes"])
    assert k == 3
    assert len(data["confusion"]) == k and all(len(row) == k for row in data["confusion"])
    assert sum(map(sum, data["confusion"])) == data["n"] == sum(data["support"])


def test_eval_bad_split(trained: Path) -> None:
    result = runner.invoke(app, ["eval", str(trained / "checkpoints" / "best"), "--split", "x"])
    assert result.exit_code == 2


def test_eval_bad_paths(trained: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(300))
    broken = tmp_path / "broken"
    shutil.copytree((trained / "checkpoints" / "best").resolve(), broken)
    (broken / "model.safetensors").write_bytes(os.urandom(300))
    for path in (tmp_path / "missing", empty, junk, broken):
        result = runner.invoke(app, ["eval", str(path)])
        _usage_error(result, path.name, lines=1)


def test_resume_with_a_changed_config_lists_the_differences(trained: Path) -> None:
    result = runner.invoke(app, ["train", "--resume", str(trained),
                                 "--set", "training.epochs=5"])
    _usage_error(result, "training.epochs")


def _start_training(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "train", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until training has started (signal handlers installed)
        if line.startswith("training "):
            return proc
    proc.kill()
    raise AssertionError(f"training did not start: {proc.communicate()}")


@pytest.mark.slow
def test_real_sigint_then_resume_and_sigterm(tmp_path: Path) -> None:
    path = _write(tmp_path, "data:\n  dataset: digits\nmodel:\n  hidden: [32]\n"
                            "training:\n  epochs: 50\n  batch_size: 1\n  device: cpu\n"
                            f"output:\n  dir: {(tmp_path / 'runs').as_posix()}\n", "long.yaml")
    proc = _start_training([str(path)], tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    (run_dir,) = (tmp_path / "runs" / "long").iterdir()
    assert f"fcnet train --resume {run_dir}" in err
    assert "interrupted" in out

    proc = _start_training(["--resume", str(run_dir)], tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert f"fcnet train --resume {run_dir}" in err


def test_an_interrupted_shared_ensemble_says_to_train_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "runs" / "tiny" / "r1"
    monkeypatch.setattr("fcnet_cli.engine.train.loop.train",
                        _fake_train(run_dir, "completed", (signal.SIGINT,)))
    shared = _tiny(tmp_path).read_text().replace("ensemble: 1", "ensemble: 4\n  ensemble_kind: "
                                                                "shared")
    result = runner.invoke(app, ["train", str(_write(tmp_path, shared, "shared.yaml"))])
    assert result.exit_code == 130, result.output
    assert "--resume" not in result.stderr
    assert f"does not resume: train it again with fcnet train {run_dir}/config.yaml" in \
        result.stderr

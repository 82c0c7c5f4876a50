"""MLflow tracking against real stores: a SQLite tracking store read back with MlflowClient,
the pyfunc model against `fcnet predict`, a server that refuses connections, `mlflow-sync`,
seed groups and sweeps as parent and child runs, and a real `mlflow server` (slow)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from messy_tables import penguins, write_csv
from typer.testing import CliRunner

from fcnet_cli.cli import app

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# seconds `mlflow server` may take to answer (its start imports most of MLflow: about 10 s on
# an idle 2-core machine, 40 s on a loaded one), else the server test is skipped
SERVER_WAIT = float(os.environ.get("FCNET_TEST_MLFLOW_SERVER_WAIT", "60"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iris(tmp: Path, extra: str = "", epochs: int = 3) -> Path:
    exp = tmp / "iris.yaml"
    exp.write_text("data: {dataset: iris}\nmodel: {hidden: [8]}\n"
                   "optimizer: {name: adam, lr: 0.02}\n"
                   f"training: {{epochs: {epochs}, batch_size: 16, device: cpu}}\n{extra}"
                   f"output: {{dir: {(tmp / 'runs').as_posix()!r}, name: iris}}\n",
                   encoding="utf-8")
    return exp


def _train(args: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, ["train", "-q", *args])
    return r.exit_code, r.stdout, r.stderr


def _runs(uri: str, experiment: str) -> list:  # type: ignore[type-arg]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time"]))


def _history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key)]


def _artifacts(uri: str, run_id: str) -> set[str]:
    return {a.path for a in MlflowClient(uri).list_artifacts(run_id)}


# ---------------------------------------------------------------- a run on a messy table


@pytest.fixture(scope="module")
def penguin_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("penguins")
    csv = write_csv(penguins(100, 0), tmp / "penguins.csv")
    exp = tmp / "penguins.yaml"
    exp.write_text(f"data: {{dataset: csv, path: {csv.as_posix()!r}, target: species, "
                   "missing: median, missing_indicator: true}\n"
                   "model: {hidden: [8]}\noptimizer: {name: adam, lr: 0.02}\n"
                   "training: {epochs: 3, batch_size: 16, device: cpu, seed: 7}\n"
                   f"output: {{dir: {(tmp / 'runs').as_posix()!r}, name: penguins, "
                   "mlflow: {experiment: birds}}\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["train", str(exp)])
    assert r.exit_code == 0, r.output
    run_dir = Path(next(line.split()[-1] for line in r.stdout.splitlines()
                        if line.startswith("run directory")))
    uri = f"sqlite:///{(tmp / 'runs' / 'mlflow.db').as_posix()}"
    return {"tmp": tmp, "csv": csv, "run_dir": run_dir, "uri": uri, "stderr": r.stderr}


def test_output_mlflow_logs_params_epochs_tags_and_artifacts(penguin_run: dict) -> None:
    uri, run_dir = penguin_run["uri"], Path(penguin_run["run_dir"])  # the default store
    runs = _runs(uri, "birds")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert f"mlflow: logged run {run.info.run_id}" in penguin_run["stderr"]
    params = run.data.params
    assert params["optimizer.lr"] == "0.02" and params["model.hidden"] == "[8]"
    assert params["data.target"] == "species" and params["training.seed"] == "7"
    assert [s for s, _ in _history(uri, run.info.run_id, "val_loss")] == [1, 2, 3]
    rows = pl.read_csv(run_dir / "metrics.csv")
    logged = [v for _, v in _history(uri, run.info.run_id, "train_loss")]
    assert np.allclose(logged, rows["train_loss"].to_numpy(), rtol=1e-6)
    metrics = run.data.metrics
    assert "test_accuracy" in metrics and metrics["best_epoch"] >= 1
    tags = run.data.tags
    assert tags["fcnet.run_dir"] == str(run_dir.resolve())
    assert tags["fcnet.seed"] == "7" and tags["fcnet.version"] and tags["fcnet.engine"]
    assert tags["fcnet.status"] == "completed" and "fcnet.products" in tags
    assert {"config.yaml", "metrics.csv", "summary.json", "model"} <= \
        _artifacts(uri, run.info.run_id)


def test_pyfunc_model_predicts_like_fcnet_predict(penguin_run: dict) -> None:
    uri, run_dir = penguin_run["uri"], Path(penguin_run["run_dir"])
    tmp = Path(penguin_run["tmp"])
    rows = penguins(40, 11).drop("species")  # new rows: text columns, empty cells
    assert rows.null_count().sum_horizontal()[0] > 0
    new = write_csv(rows, tmp / "new.csv")
    out = tmp / "pred.csv"
    r = CliRunner().invoke(app, ["predict", str(run_dir), str(new), "--proba", "-o", str(out)])
    assert r.exit_code == 0, r.output
    expected = pl.read_csv(out)
    mlflow.set_tracking_uri(uri)
    run = _runs(uri, "birds")[0]
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    frame = pd.read_csv(new)  # as a user reads it: NaN in the empty cells
    got = model.predict(frame)
    assert list(got.columns) == expected.columns
    assert got["prediction"].tolist() == expected["prediction"].to_list()
    proba = [c for c in expected.columns if c.startswith("proba_")]
    assert np.max(np.abs(got[proba].to_numpy() - expected[proba].to_numpy())) <= 1e-6
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == ["island", "bill_length_mm", "flipper_length_mm", "sex"]
    example = model.metadata.load_input_example(_model_dir(uri, run))
    assert list(example.columns) == inputs and len(example) > 0


def _model_dir(uri: str, run) -> str:  # type: ignore[no-untyped-def]
    return str(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model", tracking_uri=uri)))


# ---------------------------------------------------------------- an unreachable server


def test_refused_server_never_stops_training_then_mlflow_sync_logs_it(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    exp = _iris(tmp_path)
    started = time.perf_counter()
    code, stdout, stderr = _train([str(exp), "--mlflow", f"http://127.0.0.1:{port}"])
    assert code == 0, stderr
    assert time.perf_counter() - started < 60
    warnings = [line for line in stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, stderr
    run_dir = Path(stdout.strip().splitlines()[-1])
    assert warnings[0] == (f"warning: mlflow (http://127.0.0.1:{port}): unreachable "
                           "(Connection refused); not logged: the run (log it later with: "
                           f"fcnet mlflow-sync {run_dir} --mlflow http://127.0.0.1:{port})")
    assert (run_dir / "summary.json").is_file()

    uri = f"sqlite:///{(tmp_path / 'synced.db').as_posix()}"
    r = CliRunner().invoke(app, ["mlflow-sync", str(run_dir), "--mlflow", uri])
    assert r.exit_code == 0, r.output
    assert f"logged {run_dir} to {uri}" in r.stdout
    runs = _runs(uri, "iris")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["optimizer.name"] == "adam"
    assert [s for s, _ in _history(uri, runs[0].info.run_id, "val_accuracy")] == [1, 2, 3]
    assert {"config.yaml", "metrics.csv", "model"} <= _artifacts(uri, runs[0].info.run_id)


def test_mlflow_sync_refused_is_a_runtime_error_and_bad_dir_a_usage_error(
        tmp_path: Path) -> None:
    port = _free_port()
    exp = _iris(tmp_path, epochs=1)
    code, stdout, _ = _train([str(exp)])
    run_dir = stdout.strip().splitlines()[-1]
    r = CliRunner().invoke(app, ["mlflow-sync", run_dir, "--mlflow",
                                 f"http://127.0.0.1:{port}"])
    assert r.exit_code == 1 and "unreachable" in r.stderr
    r = CliRunner().invoke(app, ["mlflow-sync", str(tmp_path)])
    assert r.exit_code == 2 and "not a run directory" in r.stderr


# ---------------------------------------------------------------- parents and children


@pytest.mark.slow
def test_seeds_log_a_parent_with_mean_and_std_and_a_child_per_seed(tmp_path: Path) -> None:
    uri = f"sqlite:///{(tmp_path / 'm.db').as_posix()}"
    code, stdout, stderr = _train([str(_iris(tmp_path, epochs=2)), "--seeds", "2",
                                   "--mlflow", uri])
    assert code == 0, stderr
    runs = _runs(uri, "iris")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.info.run_name for c in children) == ["seed-0", "seed-1"]
    assert sorted(c.data.params["training.seed"] for c in children) == ["0", "1"]
    finals = [c.data.metrics["best_val_accuracy"] for c in children]
    assert parent.data.metrics["val_accuracy_mean"] == pytest.approx(np.mean(finals))
    assert parent.data.metrics["val_accuracy_std"] == pytest.approx(np.std(finals, ddof=1))
    assert parent.info.status == "FINISHED" and "group.json" in \
        _artifacts(uri, parent.info.run_id)
    for c in children:
        assert [s for s, _ in _history(uri, c.info.run_id, "val_loss")] == [1, 2]


@pytest.mark.slow
def test_sweep_logs_a_parent_with_the_leaderboard_and_a_child_per_trial(
        tmp_path: Path) -> None:
    uri = f"sqlite:///{(tmp_path / 'm.db').as_posix()}"
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: tiny\nbase:\n  data: {dataset: iris}\n  model: {hidden: [8]}\n"
                    "  optimizer: {name: sgd, lr: 0.05}\n"
                    "  training: {epochs: 2, batch_size: 16, device: cpu}\n"
                    f"  output: {{dir: {(tmp_path / 'runs').as_posix()!r}}}\n"
                    "method: grid\nseeds: 1\nmetric: val_accuracy\n"
                    "parameters:\n  optimizer.lr: [0.05, 1.0e+30]\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["sweep", "-q", str(spec), "--mlflow", uri])
    assert r.exit_code == 0, r.output
    runs = _runs(uri, "tiny")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert {"leaderboard.csv", "sweep.yaml"} <= _artifacts(uri, parent.info.run_id)
    states = {c.data.params["optimizer.lr"]: (c.data.tags["fcnet.state"], c.info.status)
              for c in children}
    assert states["0.05"] == ("complete", "FINISHED")
    assert states["1e+30"] == ("fail", "FAILED")  # diverged: a failed trial, marked
    assert parent.data.metrics["trials_complete"] == 1
    assert parent.data.metrics["trials_fail"] == 1
    best = next(c for c in children if c.data.params["optimizer.lr"] == "0.05")
    assert "model" in _artifacts(uri, best.info.run_id)
    assert [s for s, _ in _history(uri, best.info.run_id, "val_loss")] == [1, 2]

    other = f"sqlite:///{(tmp_path / 'synced.db').as_posix()}"  # the folder, from its files
    r = CliRunner().invoke(app, ["mlflow-sync", str(tmp_path / "runs" / "tiny"),
                                 "--mlflow", other])
    assert r.exit_code == 0, r.output
    assert "3 runs, parent" in r.stdout
    synced = _runs(other, "tiny")
    assert sorted(x.data.tags.get("fcnet.state", "-") for x in synced) == \
        ["-", "complete", "fail"]


# ---------------------------------------------------------------- lazy imports


def test_help_and_runs_without_tracking_never_import_mlflow(tmp_path: Path) -> None:
    exp = _iris(tmp_path, epochs=1)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom fcnet_cli.cli import app\n"
        "r = CliRunner()\n"
        "codes = [r.invoke(app, a).exit_code for a in (['--help'], ['train', '--help'],"
        " ['sweep', '--help'], ['mlflow-sync', '--help'], ['dashboard', '--help'],"
        f" ['train', '-q', {str(exp)!r}])]\n"
        "print(codes, sorted(m for m in ('mlflow', 'optuna_dashboard') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0, 0, 0] []"


# ---------------------------------------------------------------- a real tracking server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("server")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{(tmp / 's.db').as_posix()}",
         "--artifacts-destination", (tmp / "artifacts").as_uri()],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # its own process group: the server's workers stop with it
    url = f"http://127.0.0.1:{port}"
    wait = SERVER_WAIT
    deadline = time.monotonic() + wait
    up = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            up = urllib.request.urlopen(url + "/health", timeout=1).status == 200
            break
        except OSError:
            time.sleep(0.3)
    if not up:
        _stop(proc)
        pytest.skip(f"mlflow server did not answer on 127.0.0.1 within {wait:g} s")
    yield url
    _stop(proc)


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGTERM to the server's process group (the server and its workers), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(5)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_train_logs_to_a_real_mlflow_server(mlflow_server: str, tmp_path: Path) -> None:
    code, stdout, stderr = _train([str(_iris(tmp_path, epochs=2)), "--mlflow", mlflow_server])
    assert code == 0 and "warning:" not in stderr, stderr
    runs = _runs(mlflow_server, "iris")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [s for s, _ in _history(mlflow_server, runs[0].info.run_id, "val_loss")] == [1, 2]
    assert {"config.yaml", "metrics.csv", "model"} <= \
        _artifacts(mlflow_server, runs[0].info.run_id)


def test_without_the_mlflow_package_tracking_is_a_usage_error_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnet_cli.tracking import store

    monkeypatch.setattr(store, "available", lambda: False)
    code, _, stderr = _train([str(_iris(tmp_path)), "--mlflow", "default"])
    assert code == 2 and "pip install 'fcnet[mlflow]'" in stderr
    assert not (tmp_path / "runs" / "iris").exists()  # nothing trained

"""`fcnet dashboard`: optuna-dashboard on a sweep's own study storage, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcnet_cli.cli import app

pytest.importorskip("optuna_dashboard")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sweep")
    spec = tmp / "tiny.yaml"
    spec.write_text("name: tiny-dash\nbase:\n  data: {dataset: iris}\n  model: {hidden: [4]}\n"
                    "  training: {epochs: 1, batch_size: 32, device: cpu}\n"
                    f"  output: {{dir: {(tmp / 'runs').as_posix()!r}}}\n"
                    "method: grid\nseeds: 1\nmetric: val_accuracy\n"
                    "parameters:\n  optimizer.lr: [0.01, 0.1]\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["sweep", "-q", str(spec)])
    assert r.exit_code == 0, r.output
    return Path(r.stdout.strip().splitlines()[-1])


def _get(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_dashboard_serves_the_sweeps_study(sweep_dir: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "dashboard", str(sweep_dir),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed before the server starts
        assert f"http://127.0.0.1:{port}/dashboard/" in line, line
        assert "optuna.journal" in line
        deadline, data = time.monotonic() + 30, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                data = _get(f"http://127.0.0.1:{port}/api/studies")
                break
            except OSError:
                time.sleep(0.2)
        assert data is not None, f"no answer; exit {proc.poll()}"
        studies = data["study_summaries"]
        assert [s["study_name"] for s in studies] == ["tiny-dash"]
        study_id = studies[0]["study_id"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{study_id}")
        assert len(detail["trials"]) == 2
        with pytest.raises(OSError):  # bound to 127.0.0.1 only, not every interface
            other = socket.gethostbyname(socket.gethostname())
            if other.startswith("127."):
                raise OSError("no other interface to try")
            socket.create_connection((other, port), timeout=1).close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_dashboard_on_a_folder_without_a_study_is_a_usage_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["dashboard", str(tmp_path)])
    assert r.exit_code == 2 and "no optuna.journal" in r.stderr


def test_without_optuna_dashboard_it_is_a_usage_error(sweep_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "optuna_dashboard" else real(name, *a))
    r = CliRunner().invoke(app, ["dashboard", str(sweep_dir)])
    assert r.exit_code == 2 and "pip install 'fcnet[dashboard]'" in r.stderr

"""Two `fcnet sweep --storage postgresql://...` workers share one study; one is killed with
SIGKILL in the middle of a trial. Its trial must be failed (stale heartbeat), re-queued and
completed by the other, so every configuration completes exactly once.

Needs a server: `.ci/run` starts one and sets FCNET_TEST_PG (skipped otherwise).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from fcnet_cli.sweep.run import load_sweep
from fcnet_cli.sweep.store import open_store

PG = os.environ.get("FCNET_TEST_PG")
pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not PG, reason="FCNET_TEST_PG is not set (see .ci/run)")]
ROOT = Path(__file__).resolve().parents[1]


def sweep_file(tmp_path: Path) -> Path:
    doc = {
        "name": f"pg-{uuid.uuid4().hex[:10]}",  # the database outlives the test: a new study
        "base": {"data": {"dataset": "iris"}, "model": {"hidden": [16]},
                 "training": {"epochs": 30, "batch_size": 16, "device": "cpu"},
                 "output": {"dir": str(tmp_path / "runs")}},
        "method": "grid", "max_population": 1, "heartbeat_interval": 1, "grace_period": 3,
        "parameters": {"optimizer.lr": [0.02, 0.05], "optimizer.momentum": [0.0, 0.9]},
    }
    path = tmp_path / "pg.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def worker(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "fcnet_cli.cli", "sweep", str(path), "--storage", str(PG),
         "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def test_a_killed_workers_trial_is_retried_by_the_other(tmp_path: Path) -> None:
    path = sweep_file(tmp_path)
    sweep = load_sweep(path)
    store = open_store(sweep, PG)
    victim, survivor = worker(path), worker(path)
    try:
        mine = f":{victim.pid}"
        deadline, killed = time.monotonic() + 120, []
        while not killed and time.monotonic() < deadline:
            assert victim.poll() is None, victim.communicate()
            killed = [t.number for t in store.trials((optuna.trial.TrialState.RUNNING,))
                      if str(t.user_attrs.get("worker", "")).endswith(mine)]
            time.sleep(0.05)
        assert killed, "the first worker never started a trial"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        out, err = survivor.communicate(timeout=240)
        assert survivor.returncode == 0, err
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
    trials = store.trials()
    by_number = {t.number: t for t in trials}
    for number in killed:
        assert by_number[number].state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") in killed]
    assert retried and all(t.state == optuna.trial.TrialState.COMPLETE for t in retried)
    done = Counter(t.user_attrs["key"] for t in trials
                   if t.state == optuna.trial.TrialState.COMPLETE)
    assert done == Counter(p.key for p in sweep.points)
    assert not [t for t in trials if t.state in (optuna.trial.TrialState.RUNNING,
                                                 optuna.trial.TrialState.WAITING)]

"""Real processes against a live run: concurrent resumes, kill -9, a closed stdout.

Each test starts `python -m fcnet_cli.cli train` as a subprocess; the 24 resume attempts
(three waves of 8 concurrent processes) are forked from one helper that imports torch once,
so they cost about one interpreter start. Negative control: with the stale-file cleaning
moved back before the lock, the frozen waves delete the live run's temporary checkpoint and
the live run dies with "cannot save checkpoint …: No such file or directory".
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment
from fcnet_cli.engine.train.loop import train
from fcnet_cli.events import Callback, EpochMetrics, StopToken

ROOT = Path(__file__).resolve().parents[1]
# one thread: these networks are far too small to gain from more, and on a shared machine
# a second thread mostly waits for a core
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
EPOCHS = 25
WAVE = 8  # three waves of concurrent attempts: 24 in all

# Imports the CLI and torch once and waits for the live run to hold its lock. Then three
# waves of WAVE attempts, each a forked child running `fcnet train --resume RUN_DIR` for
# real: the first while the run trains; the other two while the run is frozen (SIGSTOP) in
# the middle of writing a checkpoint, its temporary checkpoint folder on disk: the moment
# a resume that cleaned before locking would delete it. Prints a JSON report.
ATTACKER = r"""
import glob, json, os, signal, sys, time
import fcnet_cli.cli.run, fcnet_cli.display, fcnet_cli.engine.train.loop
from fcnet_cli.cli import app
runs, wave_size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def alive(pid):  # a zombie (exited, not yet reaped by pytest) counts as gone
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def attempt(i):
    fd = os.open(f"{out}/attempt-{i}.err", os.O_WRONLY | os.O_CREAT, 0o644)
    os.dup2(fd, 1); os.dup2(fd, 2)
    try:
        app(["train", "--resume", run_dir], prog_name="fcnet")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)

def wave(first):
    kids = {}
    for i in range(first, first + wave_size):
        pid = os.fork()
        if pid == 0:
            attempt(i)
        kids[pid] = i
    for _ in kids:
        pid, status = os.wait()
        i = kids[pid]
        line = (open(f"{out}/attempt-{i}.err").read().splitlines() or [""])[0]
        result[i] = [os.waitstatus_to_exitcode(status), line, alive(live_pid)]

print("ready", flush=True)
live_pid = int(sys.stdin.readline())
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    locks = glob.glob(f"{runs}/*/*/.lock")
    if locks and open(locks[0]).read().strip() == str(live_pid):
        break
    time.sleep(0.01)
run_dir = os.path.dirname(locks[0])
result, frozen_with_tmp = {}, []
wave(0)
for w in (1, 2):
    while alive(live_pid):  # catch the run mid-checkpoint
        if glob.glob(f"{run_dir}/checkpoints/.tmp-*"):
            os.kill(live_pid, signal.SIGSTOP)
            tmp = glob.glob(f"{run_dir}/checkpoints/.tmp-*")
            if tmp:
                break
            os.kill(live_pid, signal.SIGCONT)  # it finished that write meanwhile: again
        time.sleep(0.0005)
    else:
        break
    wave(w * wave_size)
    frozen_with_tmp.append([p for p in tmp if os.path.exists(p)])
    os.kill(live_pid, signal.SIGCONT)
print(json.dumps({"run_dir": run_dir, "attempts": result, "frozen": frozen_with_tmp}),
      flush=True)
"""


def end(procs: list[subprocess.Popen]) -> None:
    """Leave nothing behind when a test fails midway (a frozen live run included)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=30)


def write_config(tmp_path: Path, name: str, epochs: int, out: str = "runs") -> Path:
    """A small CSV problem (no scikit-learn import) whose epochs are mostly checkpoint writes:
    the window in which a run has temporary checkpoint folders is what the attempts hit."""
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,label\n" + "".join(
        f"{i % 7},{i % 5},{(i * 3) % 11},{'xyz'[i % 3]}\n" for i in range(120)))
    cfg = tmp_path / f"{name}-{out}.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {data}}}\nmodel: {{hidden: [32]}}\n"
                   f"optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}\n"
                   f"training: {{epochs: {epochs}, batch_size: 32, device: cpu, seed: 3}}\n"
                   f"output: {{dir: {tmp_path / out}, name: {name}}}\n")
    return cfg


def rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without its wall-clock column."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_concurrent_resumes_never_harm_a_live_run(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "live", epochs=EPOCHS)
    attacker = subprocess.Popen(
        [sys.executable, "-c", ATTACKER, str(tmp_path / "runs"), str(WAVE), str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    assert attacker.stdout is not None and attacker.stdin is not None
    assert attacker.stdout.readline().strip() == "ready"
    live = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "train", str(cfg), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=tmp_path)
    threads = torch.get_num_threads()
    try:
        attacker.stdin.write(f"{live.pid}\n")
        attacker.stdin.flush()
        # the undisturbed run, in this process while the other two work
        torch.set_num_threads(1)
        reference = train(load_experiment(write_config(tmp_path, "live", EPOCHS, "reference")))
        report = json.loads(attacker.communicate(timeout=120)[0].splitlines()[-1])
        out, err = live.communicate(timeout=120)
    finally:
        torch.set_num_threads(threads)
        end([attacker, live])

    assert live.returncode == 0, err
    attempts = report["attempts"]
    assert len(attempts) == 3 * WAVE
    busy = f"error: {report['run_dir']}: run in use by fcnet process {live.pid}"
    for i, (code, first, alive) in attempts.items():
        assert alive, f"attempt {i} outlived the live run: the test did not overlap it"
        assert (code, first) == (2, busy), f"attempt {i}"
    # both frozen waves found a checkpoint being written, and left its folder alone
    assert len(report["frozen"]) == 2 and all(report["frozen"]), report["frozen"]
    run_dir = Path(out.strip())
    assert run_dir == Path(report["run_dir"])
    assert rows(run_dir) == rows(Path(reference.run_dir or ""))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["last_epoch"] == EPOCHS
    assert not list(run_dir.rglob(".tmp-*"))


@pytest.mark.slow
def test_kill_9_of_a_resumed_run_leaves_consistent_records(tmp_path: Path) -> None:
    # the reported case: a run interrupted at epoch 2, resumed, then killed with SIGKILL
    stop = StopToken()

    class StopAfter2(Callback):
        def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
            if metrics[0].epoch == 2:
                stop.request("SIGINT")

    cfg = write_config(tmp_path, "killed", epochs=12)
    first = train(load_experiment(cfg), callbacks=[StopAfter2()], stop=stop)
    run_dir = Path(first.run_dir or "")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["last_epoch"]) == ("interrupted", 2)

    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "train", "--resume",
                             str(run_dir), "-q"], stdout=subprocess.PIPE, env=ENV, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            summary = json.loads((run_dir / "summary.json").read_text())  # replaced atomically
            if (summary.get("last_epoch") or 0) >= 4:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        end([proc])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "running" and summary["last_epoch"] >= 4
    # summary.json is written right after metrics.csv: the kill may fall between the two
    assert len(rows(run_dir)) in (summary["last_epoch"], summary["last_epoch"] + 1)

    out = CliRunner().invoke(app, ["compare", str(tmp_path / "runs"), "--csv",
                                   str(tmp_path / "c.csv")])
    assert out.exit_code == 0, out.output
    with (tmp_path / "c.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "incomplete" and int(row["epochs"]) == len(rows(run_dir))

    resumed = CliRunner().invoke(app, ["train", "--resume", str(run_dir), "-q"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["last_epoch"] == 12
    assert len(rows(run_dir)) == 12


def first_line_then_closed(args: list[str], cwd: Path) -> tuple[bytes, str]:
    """Run `fcnet ARGS` like `fcnet ARGS | head -1`: read one line, close the pipe, let it
    finish; (that line, its stderr). The process must exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=cwd)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    try:
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=180) == 0, err
    finally:
        end([proc])
    return line, err


def test_a_closed_stdout_does_not_fail_training(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "piped", epochs=5)
    line, err = first_line_then_closed(["train", str(cfg)], tmp_path)
    assert line.startswith(b"training piped") and err == ""
    (summary_path,) = (tmp_path / "runs").glob("piped/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed" and summary["last_epoch"] == 5


@pytest.mark.slow
def test_a_closed_stdout_does_not_fail_a_sweep(tmp_path: Path) -> None:
    base = {"data": {"dataset": "iris"}, "model": {"hidden": [8]},
            "optimizer": {"name": "sgd", "lr": 0.1},
            "training": {"epochs": 4, "batch_size": 16, "device": "cpu"},
            "output": {"dir": str(tmp_path / "runs")}}
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "piped", "base": base, "method": "grid",
                                     "parameters": {"optimizer.lr": [0.05, 0.1, 0.2],
                                                    "model.hidden": [[8], [4]]}}))
    line, err = first_line_then_closed(["sweep", str(sweep)], tmp_path)
    assert line and "Traceback" not in err and "BrokenPipe" not in err, err
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("summary.json")]
    assert len(summaries) == 6 and {s["status"] for s in summaries} == {"completed"}

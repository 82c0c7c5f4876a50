"""SIGTERM while `fcnet train` loads a wide table: exit 143 within about a second, one error
line, and no run directory (none is written before the data is loaded)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


def _wide_csv(path: Path, rows: int = 2000, cols: int = 2000) -> Path:
    """About 12 MB of integers: seconds to load (unstopped), most of it inside polars."""
    x = np.random.default_rng(0).integers(0, 100, size=(rows, cols))
    labels = np.array(["a", "b"])[np.arange(rows) % 2]
    lines = [",".join([*map(str, row), lab]) for row, lab in zip(x.tolist(), labels, strict=True)]
    header = ",".join(f"f{i}" for i in range(cols)) + ",label"
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def _opened(pid: int, name: str) -> bool:
    """Whether the process has the file open or mapped (a read in progress)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        if any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith(name) for fd in fds):
            return True
        return name in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_sigterm_while_loading_stops_at_once(tmp_path: Path) -> None:
    data = _wide_csv(tmp_path / "wide.csv")
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {data}}}\nmodel: {{hidden: [4]}}\n"
                   f"training: {{epochs: 1, device: cpu}}\noutput: {{dir: {tmp_path / 'runs'}}}\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "fcnet_cli.cli", "train", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not _opened(proc.pid, "wide.csv"):  # the table is being read
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - sent
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [
        "error: interrupted (SIGTERM) while loading the data; no run was started"], err
    assert seconds < 3.0, f"took {seconds:.1f} s to stop"  # loading alone takes longer
    assert not (tmp_path / "runs").exists()

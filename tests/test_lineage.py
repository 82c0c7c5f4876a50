"""Data lineage (the training file recorded in meta.json and checked by `eval --split` and
`predict --split`), runs without a test split, and seed groups that fail."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import DataConfig, Experiment
from fcnet_cli.engine.data import lineage
from fcnet_cli.engine.data.load import load_data
from fcnet_cli.engine.store.files import resolve_latest
from fcnet_cli.engine.train.group import train_group
from fcnet_cli.events import Callback, EpochMetrics

runner = CliRunner()


def write_csv(path: Path, rows: int = 60, regression: bool = False) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    y = x @ [2.0, -1.0, 0.5] if regression else (x[:, 0] > 0).astype(int)
    lines = ["f1,f2,f3,label"] + [f"{a:.4f},{b:.4f},{c:.4f},{t:.4f}" if regression
                                  else f"{a:.4f},{b:.4f},{c:.4f},{t}"
                                  for (a, b, c), t in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_yaml(tmp: Path, csv: Path, name: str, **data: Any) -> Path:
    raw = {"data": {"dataset": "csv", "path": str(csv), **data},
           "model": {"hidden": [8], "ensemble": 1},
           "training": {"epochs": 2, "batch_size": 16, "device": "cpu"},
           "output": {"dir": str(tmp / "runs"), "name": name}}
    if name.startswith("regression"):
        raw["task"] = "regression"
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def train_cli(config: Path, *extra: str) -> Path:
    result = runner.invoke(app, ["train", str(config), "-q", *extra])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the training CSV, the run directory) of one small classification run."""
    tmp = tmp_path_factory.mktemp("lineage")
    csv = write_csv(tmp / "table.csv")
    return csv, train_cli(write_yaml(tmp, csv, "table"))


@pytest.fixture
def run(trained: tuple[Path, Path]) -> Any:
    """The trained run; its CSV gets its bytes and time stamps back after each test."""
    csv, run_dir = trained
    data, st = csv.read_bytes(), csv.stat()
    yield csv, run_dir
    csv.write_bytes(data)
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))


def evaluate(run_dir: Path, *extra: str) -> Any:
    return runner.invoke(app, ["eval", str(run_dir), *extra])


def later(csv: Path) -> None:
    """Move the file's modification time one minute on (the same second can repeat)."""
    st = csv.stat()
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 60_000_000_000))


# ---------------------------------------------------------------- what is recorded


def test_meta_records_the_training_file(run: tuple[Path, Path]) -> None:
    csv, run_dir = run
    meta = json.loads((run_dir / "checkpoints" / "best" / "meta.json").read_text())
    rec = meta["lineage"]
    assert rec["dataset"] == "csv" and rec["file"] == str(csv)
    assert rec["size"] == csv.stat().st_size and rec["mtime_ns"] == csv.stat().st_mtime_ns
    assert rec["hash"] == "sha256:" + hashlib.sha256(csv.read_bytes()).hexdigest()
    last = json.loads((run_dir / "checkpoints" / "last" / "meta.json").read_text())
    assert last["lineage"] == rec


def test_bundled_sets_record_no_file() -> None:
    assert load_data(DataConfig(dataset="iris")).lineage == {"dataset": "iris", "file": None}
    assert lineage.check_lineage({"lineage": {"dataset": "iris", "file": None}}) == []


def test_the_hash_is_streamed_over_blocks(tmp_path: Path) -> None:
    blob = np.random.default_rng(1).bytes(2 * lineage.BLOCK + 12345)  # 3 blocks, a short one
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    assert lineage.file_hash(path) == "sha256:" + hashlib.sha256(blob).hexdigest()


# ---------------------------------------------------------------- eval and predict --split


def test_an_unchanged_file_evaluates(run: tuple[Path, Path]) -> None:
    _, run_dir = run
    for extra in ([], ["--split", "val"]):
        result = evaluate(run_dir, *extra)
        assert result.exit_code == 0, result.output
        assert "training data" not in result.output


def test_an_appended_row_is_refused_and_nothing_written(run: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    csv, run_dir = run
    before = csv.stat().st_size
    with csv.open("a") as f:
        f.write("0.1,0.2,0.3,1\n")
    after = csv.stat().st_size
    message = (f"training data changed since the run: {csv} (size {before} → {after} bytes); "
               f"pass --allow-changed-data to evaluate anyway")
    result = evaluate(run_dir)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {message}"
    out = tmp_path / "pred.csv"
    pred = runner.invoke(app, ["predict", str(run_dir), "--split", "test", "-o", str(out)])
    assert pred.exit_code == 2 and message in pred.stderr and not out.exists()


def test_allow_changed_data_evaluates_with_a_warning(run: tuple[Path, Path]) -> None:
    csv, run_dir = run
    with csv.open("a") as f:
        f.write("0.1,0.2,0.3,1\n")
    result = evaluate(run_dir, "--split", "val", "--allow-changed-data")
    assert result.exit_code == 0, result.output
    assert f"warning: training data changed since the run: {csv}" in result.output
    as_json = evaluate(run_dir, "--allow-changed-data", "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["notices"][0].startswith("warning: training data changed")
    pred = runner.invoke(app, ["predict", str(run_dir), "--split", "val",
                               "--allow-changed-data"])
    assert pred.exit_code == 0 and "warning: training data changed" in pred.stderr
    assert pred.stdout.splitlines()[0] == "prediction"


def test_same_size_other_bytes_are_refused(run: tuple[Path, Path]) -> None:
    csv, run_dir = run
    text = csv.read_text()
    i = text.index("\n") + 3  # a digit of the first data row
    csv.write_text(text[:i] + ("7" if text[i] != "7" else "8") + text[i + 1:])
    later(csv)
    result = evaluate(run_dir)
    assert result.exit_code == 2
    assert "same size" in result.stderr and "content hash differs" in result.stderr


def test_a_touched_file_with_the_same_bytes_passes(run: tuple[Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    csv, run_dir = run
    later(csv)
    hashed: list[Path] = []
    real = lineage.file_hash
    monkeypatch.setattr(lineage, "file_hash", lambda p: hashed.append(p) or real(p))
    result = evaluate(run_dir)
    assert result.exit_code == 0, result.output
    assert hashed == [csv]  # the new time stamp made it hash, and the hash matched
    hashed.clear()
    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns - 60_000_000_000))
    assert evaluate(run_dir).exit_code == 0 and hashed == []  # size and time as recorded


def test_a_missing_file_is_refused_even_when_allowed(run: tuple[Path, Path]) -> None:
    csv, run_dir = run
    csv.unlink()
    for extra in ([], ["--allow-changed-data"]):
        result = evaluate(run_dir, "--split", "val", *extra)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.strip() == (f"error: training data file not found: {csv}; "
                                          f"evaluate on a file with --data FILE")


def test_a_checkpoint_without_lineage_evaluates_without_the_check(run: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    csv, run_dir = run
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old, symlinks=True)
    meta_path = old / "checkpoints" / "best" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["lineage"]  # as fcnet wrote it before lineage was recorded
    meta_path.write_text(json.dumps(meta))
    manifest_path = old / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest.values():  # nor did its manifest hash meta.json then
        entry["files"].pop("meta.json", None)
    manifest_path.write_text(json.dumps(manifest))
    assert evaluate(old).exit_code == 0
    with csv.open("a") as f:
        f.write("0.1,0.2,0.3,1\n")
    result = evaluate(old, "--split", "val")
    assert result.exit_code == 0 and "training data" not in result.output
    assert evaluate(run_dir).exit_code == 2  # the same change, with lineage: refused


# ---------------------------------------------------------------- no test split


def test_regression_without_a_test_split(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "reg.csv", rows=40, regression=True)
    run_dir = train_cli(write_yaml(tmp_path, csv, "regression", test_fraction=0))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test"] is None
    val = runner.invoke(app, ["eval", str(run_dir), "--split", "val", "--json"])
    assert val.exit_code == 0, val.output
    data = json.loads(val.stdout)
    assert data["n"] == 8 and np.isfinite(data["metrics"]["rmse"])
    message = ("error: no test split (the run used data.test_fraction: 0); use --split val or "
               "--data FILE")
    test = evaluate(run_dir)
    assert test.exit_code == 2 and test.stdout == "" and test.stderr.strip() == message
    pred = runner.invoke(app, ["predict", str(run_dir), "--split", "test"])
    assert pred.exit_code == 2 and pred.stderr.strip() == message


def test_classification_without_a_test_split_is_refused_too(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "cls.csv")
    run_dir = train_cli(write_yaml(tmp_path, csv, "cls", test_fraction=0))
    result = evaluate(run_dir, "--json")
    assert result.exit_code == 2 and "no test split" in result.stderr and result.stdout == ""


# ---------------------------------------------------------------- failed seed groups


def test_a_failed_group_is_not_latest(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "table.csv")
    config = write_yaml(tmp_path, csv, "table")
    good = train_cli(config)
    failed = runner.invoke(app, ["train", str(config), "-q", "--seeds", "2",
                                 "--set", "data.target=nope"])
    assert failed.exit_code == 2 and "no column 'nope'" in failed.stderr
    groups = [p for p in (tmp_path / "runs" / "table").iterdir() if p != good]
    assert len(groups) == 1
    data = json.loads((groups[0] / "group.json").read_text())
    assert data["status"] == {"seed-0": "failed", "seed-1": "failed"}
    assert "no column 'nope'" in data["reason"]
    latest = tmp_path / "runs" / "table" / "latest"
    assert resolve_latest(latest) == good
    assert resolve_latest(latest, any_status=True) == groups[0]  # what --resume continues
    assert evaluate(latest).exit_code == 0


class Boom(Callback):
    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if metrics[0].epoch == 2:
            raise RuntimeError("boom in epoch 2")


def test_an_error_mid_training_marks_the_seeds_failed(tmp_path: Path) -> None:
    exp = Experiment.model_validate({
        "data": {"dataset": "iris"}, "model": {"hidden": [8]},
        "training": {"epochs": 3, "batch_size": 32, "seeds": 2, "device": "cpu"},
        "output": {"dir": str(tmp_path / "runs"), "name": "iris2"}})
    good = train_cli(write_yaml(tmp_path, write_csv(tmp_path / "t.csv"), "iris2"))
    with pytest.raises(RuntimeError, match="boom in epoch 2"):
        train_group(exp, callbacks=[Boom()])
    group = max(p for p in (tmp_path / "runs" / "iris2").iterdir() if p != good)
    data = json.loads((group / "group.json").read_text())
    assert data["status"] == {"seed-0": "failed", "seed-1": "failed"}
    assert data["reason"] == "boom in epoch 2"
    for seed in ("seed-0", "seed-1"):  # the epoch that finished is kept, as in a single run
        summary = json.loads((group / seed / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["last_epoch"] == 2
    assert resolve_latest(tmp_path / "runs" / "iris2" / "latest") == good


def test_a_killed_group_is_not_latest(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "x"
    good, killed = folder / "20260101-120000", folder / "20260101-130000"
    for run_dir in (good, killed):
        (run_dir / "seed-0").mkdir(parents=True)
        (run_dir / "config.yaml").write_text("{}\n")
    (killed / "group.json").write_text(json.dumps({"status": {"seed-0": "training"}}))
    (killed / "seed-0" / ".lock").write_text(f"{2**22 + 12345:<19}\n")  # a pid that is gone
    (good / "group.json").write_text(json.dumps({"status": {"seed-0": "completed"}}))
    assert resolve_latest(folder / "latest") == good
    (killed / "seed-0" / ".lock").write_text(f"{os.getpid():<19}\n")  # still training
    assert resolve_latest(folder / "latest") == killed
    (good / "group.json").write_text(json.dumps({"status": {"seed-0": "diverged"}}))
    (killed / "seed-0" / ".lock").write_text("")
    with pytest.raises(Exception, match="every run in .* failed or was killed"):
        resolve_latest(folder / "latest")

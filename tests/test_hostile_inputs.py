"""Hostile and careless inputs, replayed through the CLI.

Every case asserts the exit code, exactly one `error:` line (its start is matched), and that
nothing under the test's folder was created, changed or removed, and nothing was executed
(the files that try to run code would create MARKER). The list covers the earlier
reliability work's table (malformed files, tags, bad data, tampered checkpoints, sweeps)
and the bounds added since (aliases, nesting, huge numbers, memory, checkpoint versions,
a busy run, single-class data, `--set` blame).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment
from fcnet_cli.engine.checkpoint import RunLock
from fcnet_cli.engine.train import train

runner = CliRunner()
MARKER = "MARKER"
TINY = ("data: {{dataset: iris}}\nmodel: {{hidden: [4]}}\n"
        "training: {{epochs: 1, device: cpu}}\noutput: {{dir: {runs}}}\n")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root (hidden ones too): a file's sha256, a link's target, 'dir'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def replay(root: Path, argv: list[str], code: int, start: str) -> tuple[str, float]:
    """Run the CLI; check the exit code, one error line starting with `start`, no change."""
    before = snapshot(root)
    t0 = time.perf_counter()
    result = runner.invoke(app, argv)
    seconds = time.perf_counter() - t0
    lines = result.stderr.splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert lines[0].removeprefix("error: ").startswith(start), lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert snapshot(root) == before, "the command wrote or removed files"
    assert not list(root.rglob(MARKER)), "the command executed code from its input"
    return lines[0], seconds


def write(root: Path, name: str, text: str | bytes) -> Path:
    path = root / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def tiny(root: Path, extra: str = "") -> Path:
    return write(root, "exp.yaml", TINY.format(runs=root / "runs") + extra)


# ---------------------------------------------------------------- experiment files

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9))

CONFIG_CASES: dict[str, tuple[str, str]] = {
    # name: (file text, start of the message after "exp.yaml:LINE: ")
    "malformed": ("model: {hidden: [1, 2}\n", "1: malformed YAML"),
    "top-level list": ("- 1\n- 2\n", "1: top level must be a mapping"),
    "python tag": (f"model: !!python/object/apply:os.system ['touch {MARKER}']\n",
                   "1: unsupported YAML tag"),
    "duplicate key": ("optimizer:\n  lr: 0.1\n  lr: 0.2\n", "3: optimizer.lr: duplicate key"),
    "unknown key": ("optimizer:\n  moment: 0.9\n", "2: optimizer.moment: unknown key; did you"),
    "wrong type": ("model:\n  hidden: 64\n", "2: model.hidden: Input should be a valid list"),
    "non-finite": ("optimizer:\n  lr: .nan\n", "2: optimizer.lr: must be a finite number"),
    "out of range": ("model:\n  hidden: [0]\n", "2: model.hidden: layer widths must be > 0"),
    "unknown activation": ("model:\n  activation: swish\n", "2: model.activation: Input "
                                                            "should be 'relu'"),
    "alias bomb": (BOMB, "1: YAML anchor &a is not allowed"),
    "merge key": ("base: &b {lr: 0.1}\noptimizer:\n  <<: *b\n", "1: YAML anchor &b"),
    "50,000-deep list": ("model:\n  hidden: " + "[" * 50_000 + "]" * 50_000 + "\n",
                         "2: nested deeper than 50 levels"),
    "5,000-digit integer": ("training:\n  epochs: " + "9" * 5000 + "\n",
                            "2: training.epochs: integer too large (5000 digits"),
    "10^24 epochs": ("training:\n  epochs: 1000000000000000000000000\n",
                     "2: training.epochs: Input should be less than or equal to 1000000"),
    "seed 10^20": ("training:\n  seed: 100000000000000000000\n",
                   "2: training.seed: Input should be less than or equal to"),
    "101 layers": ("model:\n  hidden: [" + ", ".join(["2"] * 101) + "]\n",
                   "2: model.hidden: List should have at most 100 items"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_hostile_experiment_file(tmp_path: Path, case: str) -> None:
    text, start = CONFIG_CASES[case]
    cfg = write(tmp_path, "exp.yaml", text)
    _, seconds = replay(tmp_path, ["train", str(cfg)], 2, f"{cfg}:{start}")
    # refused while reading: bombs before any expansion (measured 0.02 s; the deep list 0.14 s,
    # a scan of its 100,000 brackets)
    assert seconds < (1.0 if "bomb" in case else 2.0)


def test_empty_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "exp.yaml", "")
    replay(tmp_path, ["train", str(cfg)], 2, f"{cfg}: empty file")


@pytest.mark.parametrize(("item", "start"), [
    ("model.hidden=[1e9]", "--set model.hidden: Input should be a valid integer"),
    ("model.hidden=[1000000000]", "the network needs an estimated"),
    ("training.max_memory=0.000001", "the network needs an estimated"),
    ("model.hidden=" + "[" * 100 + "]" * 100, "--set model.hidden:1: nested deeper than 50"),
    ("training.epochs=" + "9" * 5000, "--set training.epochs:1: integer too large"),
    ("x=*a", "--set x:1: YAML alias *a is not allowed"),
])
def test_hostile_set_override(tmp_path: Path, item: str, start: str) -> None:
    line, seconds = replay(tmp_path, ["train", str(tiny(tmp_path)), "--set", item], 2, start)
    assert "exp.yaml" not in line  # blamed on --set, not on the file's line
    assert seconds < 10.0  # loading iris, not allocating the network


# ---------------------------------------------------------------- data


DATA_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    # name: (writes the data, returns `data:` mapping text; start of the message)
    "missing file": (lambda r: "{dataset: csv, path: nope.csv}", "nope.csv: file not found"),
    "a directory": (lambda r: (r / "adir.csv").mkdir() or "{dataset: csv, path: adir.csv}",
                    "adir.csv: is a directory"),
    "empty data set": (lambda r: write(r, "d.csv", "a,b,label\n") and
                       "{dataset: csv, path: d.csv}", "d.csv: data set is empty"),
    "fewer rows than classes": (
        lambda r: write(r, "d.csv", "a,b,label\n" + "".join(
            f"{i},{i},{i % 5}\n" for i in range(6))) and "{dataset: csv, path: d.csv}",
        "d.csv: the train split would get"),
    "NaN features": (
        lambda r: write(r, "d.csv", "a,b,label\n" + "".join(
            f"{i},{'nan' if i == 3 else i},{'xy'[i % 2]}\n" for i in range(40))) and
        "{dataset: csv, path: d.csv}", "d.csv: missing values in 1 column(s): 'b' 1 (row 4)"),
    "no target column": (
        lambda r: write(r, "d.csv", "a,b,label\n1,2,x\n3,4,y\n") and
        "{dataset: csv, path: d.csv, target: species}", "d.csv: data.target: no column 'species'"),
    "single class": (
        lambda r: write(r, "d.csv", "a,b,label\n" + "".join(
            f"{i},{i * 2},only\n" for i in range(30))) and "{dataset: csv, path: d.csv}",
        "d.csv: every row has the label 'only'; classification needs at least 2 classes"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_hostile_data(tmp_path: Path, case: str) -> None:
    make, start = DATA_CASES[case]
    data = make(tmp_path)
    cfg = write(tmp_path, "exp.yaml", f"data: {data}\ntraining: {{epochs: 1, device: cpu}}\n"
                                      f"output: {{dir: {tmp_path / 'runs'}}}\n")
    replay(tmp_path, ["train", str(cfg)], 2, str(tmp_path / start))


def test_labels_out_of_range(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.ones((20, 2), dtype=np.float32), y=np.array([-1, 0] * 10))
    write(tmp_path, "neg.npz", buf.getvalue())
    cfg = write(tmp_path, "exp.yaml", f"data: {{dataset: npz, path: neg.npz}}\n"
                                      f"output: {{dir: {tmp_path / 'runs'}}}\n")
    replay(tmp_path, ["train", str(cfg)], 2, f"{tmp_path / 'neg.npz'}: labels out of range")


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run on a 3-feature CSV, copied by each test that tampers with it."""
    root = tmp_path_factory.mktemp("trained")
    data = write(root, "d.csv", "a,b,c,label\n" + "".join(
        f"{i % 7},{i % 3},{i % 5},{'xy'[i % 2]}\n" for i in range(60)))
    cfg = write(root, "t.yaml", f"data: {{dataset: csv, path: {data}}}\nmodel: {{hidden: [4]}}\n"
                                f"training: {{epochs: 1, device: cpu}}\n"
                                f"output: {{dir: {root / 'runs'}}}\n")
    return Path(train(load_experiment(cfg)).run_dir or "")


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run", symlinks=True))


def _edit_meta(ckpt: Path, **changes: object) -> None:
    meta = json.loads((ckpt / "meta.json").read_text())
    for key, value in changes.items():
        node = meta
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    (ckpt / "meta.json").unlink()  # a published checkpoint's files are read-only by intent
    (ckpt / "meta.json").write_text(json.dumps(meta))


def _rehash(ckpt: Path, name: str) -> None:
    """Record a tampered file's hash in meta.json and the manifest (a careful attacker)."""
    digest = hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"][name] = digest
    (ckpt / "meta.json").write_text(json.dumps(meta))
    manifest_path = ckpt.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest.values():
        if entry["dir"] == ckpt.resolve().name:
            entry["files"][name] = digest
    manifest_path.write_text(json.dumps(manifest))


def best(run: Path) -> Path:
    return run / "checkpoints" / "best"


def test_eval_missing_path(tmp_path: Path) -> None:
    replay(tmp_path, ["eval", str(tmp_path / "nothing")], 2,
           f"{tmp_path / 'nothing'}: no such file or directory")


def test_eval_directory_without_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "emptyck").mkdir()
    replay(tmp_path, ["eval", str(tmp_path / "emptyck")], 2,
           f"{tmp_path / 'emptyck'}: no checkpoint in this directory")


@pytest.mark.parametrize(("content", "start"), [
    (b"", "empty file (0 bytes)"),
    (None, "not a valid safetensors file, truncated or corrupt"),
    (os.urandom(4096), "not a valid safetensors file, truncated or corrupt"),
])
def test_eval_broken_weights(run: Path, tmp_path: Path, content: bytes | None,
                             start: str) -> None:
    weights = best(run) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if content is None else content)
    replay(tmp_path, ["eval", str(best(run))], 2, f"{weights}: {start}")


def test_eval_hash_mismatch(run: Path, tmp_path: Path) -> None:
    weights = best(run) / "model.safetensors"
    tensors = safetensors.torch.load(weights.read_bytes())
    weights.write_bytes(safetensors.torch.save({k: v + 1 for k, v in tensors.items()}))
    replay(tmp_path, ["eval", str(best(run))], 2, f"{weights}: sha256 ")


def test_eval_layout_mismatch(run: Path, tmp_path: Path) -> None:
    _edit_meta(best(run), config__model__hidden=[16])
    replay(tmp_path, ["eval", str(best(run))], 2,
           f"{best(run) / 'model.safetensors'}: layout mismatch at 0.weight: the config "
           "expects [16, 3], the file has [4, 3]")


def test_eval_wrong_feature_count(run: Path, tmp_path: Path) -> None:
    two = write(tmp_path, "two.csv", "a,b,label\n" + "".join(
        f"{i % 7},{i % 3},{'xy'[i % 2]}\n" for i in range(60)))
    _edit_meta(best(run), config__data__path=str(two))
    replay(tmp_path, ["eval", str(best(run))], 2,
           f"{two}: no column 'c' (the model expects 3 columns: a, b, c)")


@pytest.mark.parametrize(("changes", "start"), [
    ({"version": 99}, "checkpoint version 99 is newer than this fcnet reads (version 1)"),
    ({"format": "pickle-zoo"}, "unknown checkpoint format 'pickle-zoo'"),
])
def test_eval_unknown_checkpoint_format(run: Path, tmp_path: Path, changes: dict,
                                        start: str) -> None:
    _edit_meta(best(run), **changes)
    replay(tmp_path, ["eval", str(best(run))], 2, f"{best(run) / 'meta.json'}: {start}")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_resume_with_a_malicious_pickle(run: Path, tmp_path: Path) -> None:
    last = run / "checkpoints" / "last"
    buf = io.BytesIO()
    torch.save({"epoch": _Evil(tmp_path / MARKER)}, buf)
    (last / "train_state.pt").write_bytes(buf.getvalue())
    _rehash(last, "train_state.pt")
    replay(tmp_path, ["train", "--resume", str(run)], 2,
           f"{last / 'train_state.pt'}: refused to load (")


def test_resume_of_a_busy_run(run: Path, tmp_path: Path) -> None:
    (run / "checkpoints" / ".tmp-inprogress").mkdir()  # a live run's checkpoint being written
    with RunLock(run):
        replay(tmp_path, ["train", "--resume", str(run)], 2,
               f"{run}: run in use by fcnet process {os.getpid()}")
    assert (run / "checkpoints" / ".tmp-inprogress").is_dir()


# ---------------------------------------------------------------- sweep files


def _sweep(root: Path, body: str) -> Path:
    return write(root, "sweep.yaml", "name: s\nbase:\n  data: {dataset: iris}\n"
                                     f"  output: {{dir: {root / 'runs'}}}\n{body}")


SWEEP_CASES: dict[str, tuple[str, str]] = {
    "invalid base": ("  model: {hidden: [0]}\nparameters:\n  optimizer.lr: [0.1]\n",
                     "5: model.hidden: layer widths must be > 0"),
    "unknown parameter": ("parameters:\n  optimizer.lrr: [0.1]\n",
                          "6: parameters.optimizer.lrr: unknown parameter; did you mean"),
    "alias bomb": ("parameters:\n  optimizer.lr: [0.1]\n" + BOMB,
                   "7: YAML anchor &a is not allowed"),
    "10^9 grid points": ("parameters:\n  optimizer.lr: {uniform: [0.01, 0.1], "
                         "num: 1000000000}\n", ""),
    "10^9 seeds": ("seeds: 1000000000\nparameters:\n  optimizer.lr: [0.1]\n",
                   "5: seeds: Input should be less than or equal to 1000"),
}


@pytest.mark.parametrize("case", list(SWEEP_CASES))
def test_hostile_sweep_file(tmp_path: Path, case: str) -> None:
    body, start = SWEEP_CASES[case]
    path = _sweep(tmp_path, body)
    line, seconds = replay(tmp_path, ["sweep", str(path)], 2, str(path))
    assert start in line
    assert seconds < 2.0


def test_sweep_unreachable_storage(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    path = _sweep(tmp_path, "parameters:\n  optimizer.lr: [0.1]\n")
    replay(tmp_path, ["sweep", str(path), "--storage", "postgresql://u:p@127.0.0.1:1/db"], 1,
           "--storage postgresql://u:***@127.0.0.1:1/db: cannot connect")

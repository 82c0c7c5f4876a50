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
from fcnet_cli.engine.store.checkpoint import RunLock
from fcnet_cli.engine.train.loop import train

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
        elif not p.is_file():  # a FIFO: reading it would block
            out[rel] = "special"
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
    cfg = write(root, "t.yaml", f"data: {{dataset: csv, path: {data}}}\n"
                                f"model: {{hidden: [4], ensemble: 1}}\n"
                                f"training: {{epochs: 1, device: cpu}}\n"
                                f"output: {{dir: {root / 'runs'}}}\n")
    return Path(train(load_experiment(cfg)).run_dir or "")


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run", symlinks=True))


def _edit_meta(ckpt: Path, rehash: bool = True, **changes: object) -> None:
    meta = json.loads((ckpt / "meta.json").read_text())
    for key, value in changes.items():
        node = meta
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    (ckpt / "meta.json").unlink()  # a published checkpoint's files are read-only by intent
    (ckpt / "meta.json").write_text(json.dumps(meta))
    if rehash:  # the manifest's hash of meta.json updated too: the schema must catch it
        _rehash_manifest(ckpt, "meta.json")


def _rehash_manifest(ckpt: Path, name: str) -> None:
    digest = hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    manifest_path = ckpt.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest.values():
        if entry["dir"] == ckpt.resolve().name:
            entry["files"][name] = digest
    manifest_path.write_text(json.dumps(manifest))


def _rehash(ckpt: Path, name: str) -> None:
    """Record a tampered file's hash in meta.json and the manifest (a careful attacker)."""
    digest = hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"][name] = digest
    (ckpt / "meta.json").write_text(json.dumps(meta))
    for changed in (name, "meta.json"):
        _rehash_manifest(ckpt, changed)


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
                   "5: seeds: Input should be less than or equal to 256"),
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


# ---------------------------------------------------------------- tables, bounded reading


def _rows(n: int, label: bool = True) -> str:
    return "".join(f"{i % 7},{i % 3},{i % 5}" + (f",{'xy'[i % 2]}" if label else "") + "\n"
                   for i in range(n))


def _train_cfg(root: Path, data: str, extra: str = "") -> Path:
    return write(root, "exp.yaml", f"{extra}data: {data}\nmodel: {{hidden: [4]}}\n"
                                   f"training: {{epochs: 1, device: cpu}}\n"
                                   f"output: {{dir: {root / 'runs'}}}\n")


def _parquet(root: Path, name: str, columns: dict) -> Path:
    import polars as pl

    path = root / name
    pl.DataFrame(columns).write_parquet(path)
    return path


TABLE_CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # name: (writes the data file, extra top-level YAML, start of the message after the path)
    "regression target inf": (
        lambda r: write(r, "d.csv", "a,b,c,label\n" + _rows(30, False).replace("\n", ",1.5\n")
                        + "1,2,3,inf\n"),
        "task: regression\n", ": row 31 (line 32), target 'label': inf is not a usable value"),
    "regression target 1e308": (
        lambda r: write(r, "d.csv", "a,b,c,label\n" + _rows(30, False).replace("\n", ",1.5\n")
                        + "1,2,3,1e308\n"),
        "task: regression\n", ": row 31 (line 32), target 'label': inf is not a usable value"),
    "NUL in a category": (
        lambda r: write(r, "d.csv", b"a,c,label\n" + b"".join(
            b"%d,%s,%s\n" % (i, b"u\x00v" if i == 5 else b"w", b"xy"[i % 2:i % 2 + 1])
            for i in range(30))),
        "", ": row 6 (line 7), column 'c': a text cell holds a NUL character"),
    "parquet list feature": (
        lambda r: _parquet(r, "d.parquet", {"a": [[1, 2]] * 20, "b": list(range(20)),
                                            "label": ["x", "y"] * 10}),
        "", ": column 'a' has type List(Int64)"),
    "parquet struct target": (
        lambda r: _parquet(r, "d.parquet", {"a": list(range(20)),
                                            "label": [{"x": i % 2} for i in range(20)]}),
        "", ": the target 'label' has type Struct"),
    "a FIFO": (lambda r: os.mkfifo(r / "d.csv") or r / "d.csv", "",
               ": not a regular file (a device, FIFO or socket)"),
}


@pytest.mark.parametrize("case", list(TABLE_CASES))
def test_hostile_table(tmp_path: Path, case: str) -> None:
    make, extra, start = TABLE_CASES[case]
    data = make(tmp_path)
    kind = "parquet" if data.suffix == ".parquet" else "csv"
    cfg = _train_cfg(tmp_path, f"{{dataset: {kind}, path: {data.name}}}", extra)
    replay(tmp_path, ["train", str(cfg)], 2, f"{data}{start}")


def _bomb(root: Path, rows: int = 200_000) -> Path:
    """A .csv.gz that expands ~100 times (3 MB of text from ~15 kB)."""
    import gzip

    path = root / "bomb.csv.gz"
    path.write_bytes(gzip.compress(b"a,b,c,label\n" + b"1,2,3,x\n1,2,3,y\n" * (rows // 2)))
    return path


@pytest.mark.parametrize(("setting", "value", "start"), [
    ("FCNET_MAX_BYTES", "100000", "more than 100,000 bytes of text once decompressed "
                                  "(limit FCNET_MAX_BYTES=100000)"),
    ("FCNET_MAX_ROWS", "1000", "more than 1,000 rows (limit FCNET_MAX_ROWS=1000)"),
    ("FCNET_MAX_COLUMNS", "3", "more than 3 columns (limit FCNET_MAX_COLUMNS=3)"),
])
def test_limits_while_streaming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Path,
                                setting: str, value: str, start: str) -> None:
    bomb = _bomb(tmp_path)
    monkeypatch.setenv(setting, value)
    cfg = _train_cfg(tmp_path, f"{{dataset: csv, path: {bomb.name}}}")
    _, seconds = replay(tmp_path, ["train", str(cfg)], 2, f"{bomb}: {start}")
    assert seconds < 1.0  # stopped at the limit, not after expanding the file
    replay(tmp_path, ["predict", str(best(run)), str(bomb)], 2, f"{bomb}: {start}")


def test_a_bad_limit_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _bomb(tmp_path, 10)
    monkeypatch.setenv("FCNET_MAX_ROWS", "many")
    cfg = _train_cfg(tmp_path, f"{{dataset: csv, path: {bomb.name}}}")
    replay(tmp_path, ["train", str(cfg)], 2, "FCNET_MAX_ROWS='many': must be a positive whole")


def test_wide_table_loads_in_linear_time(tmp_path: Path) -> None:
    """The per-column passes stay linear: 2,000 columns load about as fast per column as
    200 (the schema used to be rebuilt once per column: 2,000 columns took 77 s)."""
    from fcnet_cli.config import DataConfig
    from fcnet_cli.engine.data.load import load_data

    def seconds(n: int) -> float:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 9, size=(40, n))
        path = tmp_path / f"w{n}.csv"
        path.write_text(",".join(f"c{i}" for i in range(n)) + ",label\n" + "".join(
            ",".join(map(str, x[r])) + f",{'ab'[r % 2]}\n" for r in range(40)))
        t0 = time.perf_counter()
        load_data(DataConfig(dataset="csv", path=str(path)), task="classification")
        return time.perf_counter() - t0

    small, large = seconds(200), seconds(2000)
    assert large < 15 * small + 1.0, (small, large)  # 10× the columns: not 100× the time


# ---------------------------------------------------------------- predict inputs and options


def _features(root: Path, text: str, name: str = "x.csv") -> Path:
    return write(root, name, "a,b,c\n" + text)


SERVE_CASES: dict[str, tuple[str | bytes, list[str], str]] = {
    # name: (the data file, extra arguments, start of the message after the data path)
    "duplicate header": ("a,b,c,a\n1,2,3,4\n", [], ": duplicate column name(s) 'a'"),
    "a padded non-number": ("a,b,c\n1,2,3\n 0.9x4 ,1,2\n", [],
                            ": row 2, column 'a': ' 0.9x4 ' is not a number"),
    "1e39": ("a,b,c\n1e39,2,3\n", [], ": row 1, column 'a': 1e+39 is not a finite number "
                                      "(or is beyond float32's ±3.4e38)"),
    "--batch-size 1e14": ("a,b,c\n1,2,3\n", ["--batch-size", "100000000000000"], ""),
    "--batch-size 1e20": ("a,b,c\n1,2,3\n", ["--batch-size", "100000000000000000000"], ""),
}


@pytest.mark.parametrize("case", list(SERVE_CASES))
def test_hostile_predict_input(run: Path, tmp_path: Path, case: str) -> None:
    text, extra, start = SERVE_CASES[case]
    data = write(tmp_path, "x.csv", text)
    if not start:  # an option error: before the data is read
        replay(tmp_path, ["predict", str(best(run)), str(data), *extra], 2,
               "--batch-size must be at most 16,777,216 rows")
        return
    replay(tmp_path, ["predict", str(best(run)), str(data), *extra], 2, f"{data}{start}")


def test_predict_reads_padded_numbers_as_training_does(run: Path, tmp_path: Path) -> None:
    padded = write(tmp_path, "p.csv", "a,b,c\n 1 ,2, 3\n")
    plain = write(tmp_path, "q.csv", "a,b,c\n1,2,3\n")
    outs = [runner.invoke(app, ["predict", str(best(run)), str(p), "--proba"])
            for p in (padded, plain)]
    assert [r.exit_code for r in outs] == [0, 0] and outs[0].stdout == outs[1].stdout


def test_predict_refuses_devices_and_nul_cells(run: Path, tmp_path: Path) -> None:
    replay(tmp_path, ["predict", str(best(run)), "/dev/zero"], 2,
           "/dev/zero: not a regular file (a device, FIFO or socket)")
    link = tmp_path / "d.csv"
    link.symlink_to(tmp_path / "gone.csv")
    replay(tmp_path, ["predict", str(best(run)), str(link)], 2,
           f"{link}: a symbolic link to a missing file")


def test_train_names_a_dangling_data_link(tmp_path: Path) -> None:
    link = tmp_path / "d.csv"
    link.symlink_to(tmp_path / "gone.csv")
    cfg = _train_cfg(tmp_path, "{dataset: csv, path: d.csv}")
    replay(tmp_path, ["train", str(cfg)], 2, f"{link}: a symbolic link to a missing file")


def test_best_link_loop(run: Path, tmp_path: Path) -> None:
    link = run / "checkpoints" / "best"
    link.unlink()
    link.symlink_to("best")
    replay(tmp_path, ["eval", str(run)], 2, f"{link}: a broken or looping symbolic link")


# ---------------------------------------------------------------- checkpoint metadata


@pytest.fixture(scope="module")
def trained_regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained_regression")
    data = write(root, "r.csv", "a,b,t\n" + "".join(f"{i % 7},{i % 3},{i}.5\n" for i in range(40)))
    cfg = write(root, "r.yaml", f"task: regression\ndata: {{dataset: csv, path: {data}, "
                                f"target: t}}\nmodel: {{hidden: [4]}}\n"
                                f"training: {{epochs: 1, device: cpu}}\n"
                                f"output: {{dir: {root / 'runs'}}}\n")
    return Path(train(load_experiment(cfg)).run_dir or "")


META_CASES: dict[str, tuple[dict, str]] = {
    # name: (meta.json edits, start of the message after "<checkpoint>/meta.json: ")
    "scale 1e-30": ({"normalization__scale": [1e-30, 1.0, 1.0]},
                    "normalization.scale[0]: must be in [1e-20, 1e20] (got 1e-30)"),
    "shift 3e38": ({"normalization__shift": [3e38, 0.0, 0.0]},
                   "normalization.shift[0]: must be at most 1e30 in size (got 3e+38)"),
    "input divisor -1": ({"preprocessing__input_divisor": -1},
                         "preprocessing.input_divisor: must be a finite number > 0 (got -1)"),
    "input divisor 0": ({"preprocessing__input_divisor": 0},
                        "preprocessing.input_divisor: must be a finite number > 0 (got 0)"),
    "fill 'abc'": ({"preprocessing__columns": [
        {"name": "a", "kind": "numeric", "fill": "abc"}]},
        "preprocessing.columns[0].fill: must be a finite number or null (got 'abc')"),
    "name with NUL": ({"preprocessing__columns": [{"name": "a\x00", "kind": "numeric"}]},
                      "preprocessing.columns[0].name: must be at most 1000 characters, "
                      "without NUL"),
    "class list of numbers": ({"classes": [1, 2]}, "classes[0]: must be text without NUL"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_tampered_meta_is_refused(run: Path, tmp_path: Path, case: str) -> None:
    changes, start = META_CASES[case]
    _edit_meta(best(run), **changes)  # the manifest re-hashed: the schema must catch it
    data = write(tmp_path, "x.csv", "a,b,c\n1,2,3\n")
    replay(tmp_path, ["predict", str(best(run)), str(data)], 2,
           f"{best(run) / 'meta.json'}: {start}")


REGRESSION_META: dict[str, tuple[object, str]] = {
    "std NaN": ([float("nan")], "std[0]: must be a finite number (got nan)"),
    "std 0": ([0.0], "std[0]: must be > 0 (got 0.0)"),
    "std []": ([], "std: has 0 values, expected 1"),
    "std ['a']": (["a"], "std[0]: must be a finite number (got 'a')"),
    "mean inf": (None, "mean[0]: must be a finite number (got inf)"),
}


@pytest.mark.parametrize("case", list(REGRESSION_META))
def test_tampered_regression_target_is_refused(trained_regression: Path, tmp_path: Path,
                                               case: str) -> None:
    run = Path(shutil.copytree(trained_regression, tmp_path / "run", symlinks=True))
    std, start = REGRESSION_META[case]
    edit = ({"preprocessing__target__mean": [float("inf")]} if std is None
            else {"preprocessing__target__std": std})
    _edit_meta(best(run), **edit)
    data = write(tmp_path, "x.csv", "a,b\n1,2\n")
    replay(tmp_path, ["predict", str(best(run)), str(data)], 2,
           f"{best(run) / 'meta.json'}: preprocessing.target.{start}")


def test_meta_edit_caught_by_the_manifest(run: Path, tmp_path: Path) -> None:
    meta = json.loads((best(run) / "meta.json").read_text())
    scale = [v * 2 for v in meta["normalization"]["scale"]]  # plausible, but not what trained
    _edit_meta(best(run), rehash=False, normalization__scale=scale)
    replay(tmp_path, ["eval", str(best(run))], 2,
           f"{best(run) / 'meta.json'}: sha256 does not match {run / 'checkpoints'}")


def test_an_old_manifest_without_the_meta_hash_still_loads(run: Path, tmp_path: Path) -> None:
    manifest_path = run / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest.values():
        entry["files"].pop("meta.json")
    manifest_path.write_text(json.dumps(manifest))
    data = write(tmp_path, "x.csv", "a,b,c\n1,2,3\n")
    assert runner.invoke(app, ["predict", str(best(run)), str(data)]).exit_code == 0


def test_checkpoint_read_with_its_own_size(run: Path) -> None:
    """No read asks for the 4 GiB cap: a tiny model loads under a small address space."""
    import fcnet_cli.engine.store.checkpoint as ck
    import fcnet_cli.engine.store.verify as verify  # where checkpoint files are read

    sizes: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f: io.BufferedReader) -> None:
            self.f = f

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def read(self, n: int = -1) -> bytes:
            sizes.append(n)
            return self.f.read(n)

    verify.open = lambda p, *a: Spy(real_open(p, *a))  # type: ignore[attr-defined]
    try:
        ck.load_checkpoint(best(run))
    finally:
        del verify.open  # type: ignore[attr-defined]
    files = [*best(run).iterdir(), run / "checkpoints" / "manifest.json"]
    assert sizes and max(sizes) <= max(p.stat().st_size for p in files) + 1  # not 4 GiB


# ---------------------------------------------------------------- outputs


def _x(root: Path) -> Path:
    return write(root, "x.csv", "a,b,c\n1,2,3\n")


def test_output_inside_the_run_is_refused(run: Path, tmp_path: Path) -> None:
    manifest = run / "checkpoints" / "manifest.json"
    replay(tmp_path, ["predict", str(best(run)), str(_x(tmp_path)), "-o", str(manifest),
                      "--overwrite"], 2, f"{manifest}: inside the run/checkpoint directory")
    out = run / "model.onnx"
    replay(tmp_path, ["export", str(run), "--format", "onnx", "-o", str(out)], 2,
           f"{out}: inside the run/checkpoint directory")


def test_output_onto_a_symlink_is_refused(run: Path, tmp_path: Path) -> None:
    target = write(tmp_path, "kept.csv", "precious\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    replay(tmp_path, ["predict", str(best(run)), str(_x(tmp_path)), "-o", str(link),
                      "--overwrite"], 2, f"{link}: is a symbolic link")


def test_output_dash_is_stdout(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                               ) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["predict", str(best(run)), str(_x(tmp_path)), "-o", "-"])
    assert result.exit_code == 0 and result.stdout.startswith("prediction\n")
    assert not (tmp_path / "-").exists()


def test_output_into_a_read_only_folder(run: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnet_cli.serve import outpath

    monkeypatch.setattr(outpath, "_read_only_fs", lambda folder: True)  # root ignores chmod
    out = tmp_path / "out.csv"
    replay(tmp_path, ["predict", str(best(run)), str(_x(tmp_path)), "-o", str(out)], 2,
           f"{out}: directory {tmp_path} is not writable")


def test_publish_race_loses_cleanly(tmp_path: Path) -> None:
    """The other writer publishes between our check and our publish: we fail, it is kept."""
    from fcnet_cli.errors import UsageError
    from fcnet_cli.serve.outpath import staged_output

    out = tmp_path / "out.csv"
    with (pytest.raises(UsageError, match="already exists"),
          staged_output(out, overwrite=False) as tmp):
        tmp.write_text("ours\n")
        out.write_text("theirs\n")
    assert out.read_text() == "theirs\n" and sorted(tmp_path.iterdir()) == [out]


def _cli(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "fcnet_cli.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.mark.slow
def test_two_predicts_race_for_one_output(run: Path, tmp_path: Path) -> None:
    import subprocess

    data, out = _x(tmp_path), tmp_path / "out.csv"
    procs = [subprocess.Popen(_cli("predict", str(best(run)), str(data), "-o", str(out)),
                              stderr=subprocess.PIPE, env=_env(), text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser and len(loser.strip().splitlines()) == 1
    assert out.read_text().startswith("prediction\n")
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def _big(root: Path) -> Path:
    return write(root, "big.csv", "a,b,c\n" + "1,2,3\n" * 200_000)


def _wait_for_temporary(root: Path, proc: object, seconds: float = 90) -> list[Path]:
    end = time.time() + seconds
    while time.time() < end:
        tmps = [p for p in root.iterdir() if p.name.startswith(".out.csv.tmp-")]
        if tmps:
            return tmps
        time.sleep(0.05)
    raise AssertionError("no temporary output appeared")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killed_predict_leaves_nothing_for_long(run: Path, tmp_path: Path, how: str) -> None:
    import signal
    import subprocess

    data, out = _big(tmp_path), tmp_path / "out.csv"
    proc = subprocess.Popen(_cli("predict", str(best(run)), str(data), "-o", str(out),
                                 "--batch-size", "100"),
                            stderr=subprocess.PIPE, env=_env(), text=True)
    try:
        _wait_for_temporary(tmp_path, proc)
        proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    left = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    if how == "SIGTERM":  # cleaned up on the way out
        assert code == 143 and left == [] and not out.exists()
        return
    assert code == -9 and left and not out.exists()  # kill -9: nothing can clean up
    small = write(tmp_path, "small.csv", "a,b,c\n1,2,3\n")
    result = runner.invoke(app, ["predict", str(best(run)), str(small), "-o", str(out)])
    assert result.exit_code == 0 and out.exists()
    assert [p for p in tmp_path.iterdir() if ".tmp-" in p.name] == []  # swept

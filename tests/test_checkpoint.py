"""Checkpoint module: run directories, atomic writes, locking, old-or-new saves, safe loading."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fcnet_cli.config import Experiment, ModelConfig
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.store import verify
from fcnet_cli.engine.store.checkpoint import (
    RunBusyError,
    RunLock,
    atomic_write_text,
    clean_stale,
    load_checkpoint,
    load_train_state,
    new_run_dir,
    save_checkpoint,
)
from fcnet_cli.errors import CheckpointError, RunError


def make_meta(hidden: list[int] | None = None, **extra) -> dict:
    raw = Experiment().model_dump(mode="json")
    raw["model"]["hidden"] = [8] if hidden is None else hidden
    return {"format": ck.FORMAT, "version": ck.VERSION, "config": raw, "in_features": 4,
            "n_classes": 3, "classes": ["a", "b", "c"],
            "normalization": {"kind": "none", "shift": [0, 0, 0, 0], "scale": [1, 1, 1, 1]},
            **extra}


@pytest.fixture
def model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return build_mlp(ModelConfig(hidden=[8]), 4, 3)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return new_run_dir(tmp_path / "runs", "exp")


def saved(run_dir: Path, model, which: str = "best", **kw) -> Path:
    return save_checkpoint(run_dir, which, model.state_dict(), make_meta(**kw),
                           train_state={"epoch": 3, "rng": torch.random.get_rng_state()}
                           if which == "last" else None)


def tmp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


# ---------------------------------------------------------------------------- run directory


def test_new_run_dir_never_reuses(tmp_path: Path):
    dirs = [new_run_dir(tmp_path, "exp") for _ in range(3)]
    assert len(set(dirs)) == 3
    assert all(d.is_dir() and d.parent == tmp_path / "exp" for d in dirs)
    assert all(re.fullmatch(r"\d{8}-\d{6}(-\d+)?", d.name) for d in dirs)  # 20261126-163512-2
    (dirs[0] / "marker").write_text("x")
    again = new_run_dir(tmp_path, "exp")
    assert again not in dirs and (dirs[0] / "marker").read_text() == "x"


def test_atomic_write_replaces(tmp_path: Path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert tmp_leftovers(tmp_path) == []


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch, fail: str):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, fail, boom)
    with pytest.raises(RunError, match=r"summary\.json: No space left on device$"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert tmp_leftovers(tmp_path) == []


def test_run_lock_second_holder_fails(run_dir: Path):
    with RunLock(run_dir):
        with pytest.raises(RunBusyError, match=rf"run in use by fcnet process {os.getpid()}$"):
            with RunLock(run_dir):  # a second open file description: flock conflicts
                pass
    with RunLock(run_dir):  # released on exit
        pass


def test_run_lock_held_by_another_process(run_dir: Path):
    code = ("import sys, time; from fcnet_cli.engine.store.checkpoint import RunLock\n"
            "with RunLock(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()")
    root = str(Path(__file__).resolve().parents[1])  # importable even without `pip install -e`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "locked"
        busy = rf"{run_dir}: run in use by fcnet process {proc.pid}$"
        with pytest.raises(RunBusyError, match=busy):
            with RunLock(run_dir):
                pass
    finally:
        proc.communicate("", timeout=30)
    with RunLock(run_dir):  # the lock died with the process
        pass


# ---------------------------------------------------------------------------- save / load


def test_roundtrip_best_and_last(run_dir: Path, model):
    best = saved(run_dir, model, "best", metrics={"val_loss": 0.5})
    last = saved(run_dir, model, "last")
    assert best == run_dir / "checkpoints" / "best" and best.is_symlink()
    for path in (best, best / "model.safetensors", run_dir):
        loaded = load_checkpoint(path)
        assert loaded.state_dict.keys() == model.state_dict().keys()
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict[k], v)
        assert loaded.meta["classes"] == ["a", "b", "c"]
    assert load_checkpoint(run_dir).dir == best
    assert not (best / "train_state.pt").exists()
    state = load_train_state(last)
    assert state["epoch"] == 3 and torch.equal(state["rng"], torch.random.get_rng_state())
    fresh = build_mlp(ModelConfig(hidden=[8]), 4, 3)
    fresh.load_state_dict(load_checkpoint(last).state_dict)


def test_manifest_and_resave(run_dir: Path, model):
    saved(run_dir, model, "best", metrics={"val_loss": 0.9})
    saved(run_dir, model, "last")
    ckpts = run_dir / "checkpoints"
    first = os.readlink(ckpts / "best")
    with torch.no_grad():
        model[0].weight.add_(1.0)
    saved(run_dir, model, "best", metrics={"val_loss": 0.4})
    second = os.readlink(ckpts / "best")
    assert second != first and not (ckpts / first).exists()  # previous hidden dir removed
    assert torch.equal(load_checkpoint(ckpts / "best").state_dict["0.weight"], model[0].weight)
    manifest = json.loads((ckpts / "manifest.json").read_text())
    assert manifest["best"]["dir"] == second and manifest["best"]["metrics"] == {"val_loss": 0.4}
    assert manifest["last"]["dir"] == os.readlink(ckpts / "last")
    meta = json.loads((ckpts / "best" / "meta.json").read_text())
    raw_meta = (ckpts / "best" / "meta.json").read_bytes()
    assert manifest["best"]["files"] == {**meta["sha256"],  # meta.json is covered too
                                         "meta.json": hashlib.sha256(raw_meta).hexdigest()}
    assert "model.safetensors" in meta["sha256"]
    assert set(manifest["last"]["files"]) == {"model.safetensors", "train_state.pt", "meta.json"}
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(
        ["best", "last", second, manifest["last"]["dir"], "manifest.json"])


@pytest.mark.parametrize("fail", ["fsync", "replace", "rename"])
def test_failed_save_keeps_previous_checkpoint(run_dir: Path, model, monkeypatch, fail: str):
    saved(run_dir, model, "best")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.zero_()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, fail, boom)
    with pytest.raises(RunError, match=r"checkpoints/best: No space left on device$"):
        saved(run_dir, model, "best")
    monkeypatch.undo()
    loaded = load_checkpoint(run_dir / "checkpoints" / "best")
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in before.items())
    assert tmp_leftovers(run_dir) == []
    assert len([p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".best-")]) == 1


def test_clean_stale(run_dir: Path, model):
    saved(run_dir, model, "best")
    ckpts = run_dir / "checkpoints"
    live = os.readlink(ckpts / "best")
    (ckpts / ".tmp-abc").mkdir()
    (ckpts / ".tmp-abc" / "model.safetensors").write_bytes(b"partial")
    (ckpts / ".best-99").mkdir()
    (ckpts / ".last-7").mkdir()
    (run_dir / ".tmp-123-summary.json").write_text("{")
    removed = clean_stale(run_dir)
    assert {p.name for p in removed} == {".tmp-abc", ".best-99", ".last-7", ".tmp-123-summary.json"}
    assert (ckpts / live).is_dir() and load_checkpoint(run_dir).dir == ckpts / "best"
    assert clean_stale(run_dir) == []


# ---------------------------------------------------------------------------- bad checkpoints


def _best(run_dir: Path, model) -> Path:
    return saved(run_dir, model, "best")


def test_missing_path(tmp_path: Path):
    path = tmp_path / "nope"
    with pytest.raises(CheckpointError, match=rf"{path}: no such file or directory"):
        load_checkpoint(path)


def test_directory_without_checkpoint(tmp_path: Path):
    with pytest.raises(CheckpointError, match=rf"{tmp_path}: no checkpoint in this directory"):
        load_checkpoint(tmp_path)


def test_non_regular_file(tmp_path: Path):
    (tmp_path / "meta.json").write_text(json.dumps(make_meta()))
    os.mkfifo(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a regular file"):
        load_checkpoint(tmp_path)


def test_absurd_sizes_refused_before_reading(run_dir: Path, model, monkeypatch):
    best = _best(run_dir, model)
    monkeypatch.setattr(ck, "MAX_WEIGHTS_BYTES", 16)
    opened = []
    monkeypatch.setattr(verify, "open", lambda p, *a: opened.append(p) or open(p, *a),
                        raising=False)  # where checkpoint files are read
    with pytest.raises(CheckpointError, match=rf"{best}/model\.safetensors: implausibly large"):
        load_checkpoint(best)
    assert [Path(p).name for p in opened] == ["meta.json", "manifest.json"]  # not the weights
    monkeypatch.undo()
    meta = best / "meta.json"
    with open(meta, "r+b") as f:
        f.truncate(ck.MAX_META_BYTES + 1)  # sparse: no real disk use
    with pytest.raises(CheckpointError, match=rf"{meta}: implausibly large"):
        load_checkpoint(best)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (None, "not a valid safetensors file"),  # truncated
    (os.urandom(4096), "not a valid safetensors file"),
])
def test_corrupt_weights(run_dir: Path, model, content, message):
    best = _best(run_dir, model)
    weights = best / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if content is None else content)
    with pytest.raises(CheckpointError, match=rf"^{weights}: {message}"):
        load_checkpoint(best)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"format": "fcnet-checkpoint", "version": 1, "config": {}}',
     "missing key.*in_features"),
    ('{"config": {}}', "unknown checkpoint format None"),
    ('{"format": "other-tool", "version": 1}', "unknown checkpoint format 'other-tool'"),
    ('{"format": "fcnet-checkpoint", "version": "1"}',
     "checkpoint version must be a positive integer"),
    ('{"format": "fcnet-checkpoint", "version": 99}',
     r"checkpoint version 99 is newer than this fcnet reads \(version 1\)"),
])
def test_bad_meta(run_dir: Path, model, content, message):
    best = _best(run_dir, model)
    (best / "meta.json").write_text(content)
    with pytest.raises(CheckpointError, match=rf"{best}/meta\.json: {message}"):
        load_checkpoint(best)


def test_hash_mismatch(run_dir: Path, model):
    best = _best(run_dir, model)
    tampered = dict(model.state_dict())
    tampered["0.weight"] = tampered["0.weight"] + 1.0
    (best / "model.safetensors").write_bytes(safetensors.torch.save(tampered))
    with pytest.raises(CheckpointError, match=rf"{best}/model\.safetensors: sha256 .* meta\.json"):
        load_checkpoint(best)


def test_manifest_mismatch(run_dir: Path, model):
    best = _best(run_dir, model)
    manifest_path = run_dir / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["best"]["files"]["model.safetensors"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: sha256 does not match .*man"):
        load_checkpoint(best)


def test_layout_mismatch(tmp_path: Path, model):
    save_checkpoint(tmp_path, "best", model.state_dict(), make_meta(hidden=[16]))
    best = tmp_path / "checkpoints" / "best"
    with pytest.raises(CheckpointError,
                       match=rf"{best}/model\.safetensors: layout mismatch at 0\.weight: "
                             r"the config expects \[16, 4\], the file has \[8, 4\]"):
        load_checkpoint(best)


def test_extra_key_is_a_layout_mismatch(tmp_path: Path, model):
    sd = dict(model.state_dict(), extra=torch.zeros(2))
    save_checkpoint(tmp_path, "best", sd, make_meta())
    with pytest.raises(CheckpointError, match=r"layout mismatch at extra: .*no such tensor"):
        load_checkpoint(tmp_path)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_train_state_never_runs(run_dir: Path, model, tmp_path: Path):
    last = saved(run_dir, model, "last")
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"epoch": 1, "payload": _Evil(marker)}, buf)
    payload = buf.getvalue()
    (last / "train_state.pt").write_bytes(payload)
    # make the hashes agree so that only weights_only=True stands in the way
    meta = json.loads((last / "meta.json").read_text())
    meta["sha256"]["train_state.pt"] = verify.sha256(payload)
    (last / "meta.json").write_text(json.dumps(meta))
    manifest_path = run_dir / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["last"]["files"]["train_state.pt"] = verify.sha256(payload)
    manifest["last"]["files"]["meta.json"] = verify.sha256((last / "meta.json").read_bytes())
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=rf"^{last}/train_state\.pt: refused to load"):
        load_train_state(last)
    assert not marker.exists()


def test_train_state_hash_mismatch(run_dir: Path, model):
    last = saved(run_dir, model, "last")
    buf = io.BytesIO()
    torch.save({"epoch": 99}, buf)
    (last / "train_state.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"train_state\.pt: sha256 .* meta\.json"):
        load_train_state(last)


def test_train_state_missing(run_dir: Path, model):
    best = _best(run_dir, model)
    with pytest.raises(CheckpointError, match=rf"{best}/train_state\.pt: missing"):
        load_train_state(best)


def test_old_torch_is_refused_before_unpickling(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ck.torch, "__version__", "2.5.1+cpu")
    with pytest.raises(CheckpointError, match="need torch >= 2.10"):
        ck.load_train_state(tmp_path)

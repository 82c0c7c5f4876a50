"""The checkpoint format: the manifest, atomic checkpoint directories and safe loading (fresh run
directories, atomic files and the run-dir lock are in `files.py`).

    runs/<experiment-name>/<run-id>/
      config.yaml, metrics.csv, summary.json        written with `atomic_write_text`
      checkpoints/best -> .best-<seq>/               symlink, swapped atomically
      checkpoints/last -> .last-<seq>/               (+ train_state.pt)
      checkpoints/manifest.json                      {"best": {"dir", "files", "metrics"}, ...}

A checkpoint directory is written in full under a hidden temporary name, fsynced, renamed to
`.<which>-<seq>`, and only then published by replacing the `<which>` symlink (one rename), so a
reader or a crash always sees the old complete checkpoint or the new complete one.
Loading never unpickles anything but `weights_only=True` data, and checks sizes before reading.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from packaging.version import Version
from pydantic import ValidationError
from safetensors import SafetensorError

from fcnet_cli.config import Experiment
from fcnet_cli.engine.store.files import (
    RunBusyError,
    RunLock,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    new_run_dir,
    write_new_file,
)
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.locate import checkpoint_dir
from fcnet_cli.engine.store.verify import (
    FORMAT,
    MAX_META_BYTES,
    MAX_TRAIN_STATE_BYTES,
    MAX_WEIGHTS_BYTES,
    VERSION,
    check_layout,
    parse_meta,
    read_limited,
    read_meta,
    sha256,
    verify_hash,
    verify_manifest,
)
from fcnet_cli.errors import CheckpointError, RunError, cause

__all__ = ["LoadedCheckpoint", "RunBusyError", "RunLock", "atomic_write_bytes",
           "atomic_write_text", "checkpoint_files", "checkpoint_from_files", "clean_stale",
           "load_checkpoint", "load_train_state", "new_run_dir", "save_checkpoint",
           "write_checkpoint_files"]

WEIGHTS, META, TRAIN_STATE, MANIFEST = (
    RunDir.WEIGHTS, RunDir.META, RunDir.TRAIN_STATE, RunDir.MANIFEST)
WHICH = RunDir.WHICH
MIN_TORCH = (2, 10)  # weights-only unpickling is trusted from here on (pyproject requires it)
_SEQ_DIR = re.compile(rf"\.({'|'.join(WHICH)})-(\d+)")


# ---------------------------------------------------------------------------- saving


def _next_seq(ckpts: Path) -> int:
    seqs = [int(m.group(2)) for p in ckpts.iterdir() if (m := _SEQ_DIR.fullmatch(p.name))]
    return max(seqs, default=0) + 1


def _checkpoint_files(state_dict: dict[str, torch.Tensor], meta: dict,
                      train_state: dict | None) -> dict[str, bytes]:
    # clone: safetensors refuses shared or strided storage; cpu: files are device-independent
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    files = {WEIGHTS: safetensors.torch.save(tensors)}
    if train_state is not None:
        buf = io.BytesIO()
        torch.save(train_state, buf)
        files[TRAIN_STATE] = buf.getvalue()
    hashes = {name: sha256(data) for name, data in files.items()}
    stamped = {**meta, "format": FORMAT, "version": VERSION, "sha256": hashes}
    files[META] = json.dumps(stamped, indent=2).encode("utf-8")
    return files


def save_checkpoint(run_dir: Path, which: str, state_dict: dict[str, torch.Tensor], meta: dict,
                    train_state: dict | None = None) -> Path:
    """Write `run_dir/checkpoints/<which>` (old-or-new on disk at every instant); return it.

    Raises RunError naming the path and the cause (e.g. disk full); the previous checkpoint
    then stays in place. (If only the manifest update fails, the new checkpoint is already
    published; `load_checkpoint` skips a manifest entry that names another directory.)
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH} (got {which!r})")
    ckpts = RunDir(run_dir).checkpoints
    link = ckpts / which
    files = _checkpoint_files(state_dict, meta, train_state)
    tmp = ckpts / f".tmp-{secrets.token_hex(6)}"
    tmp_link = ckpts / f".tmp-{secrets.token_hex(6)}-{which}"
    target: Path | None = None
    try:
        if not ckpts.is_dir():
            ckpts.mkdir(parents=True)
            fsync_dir(ckpts.parent)
        previous = os.readlink(link) if link.is_symlink() else None
        tmp.mkdir()
        for name, data in files.items():
            write_new_file(tmp / name, data)
        fsync_dir(tmp)
        target = ckpts / f".{which}-{_next_seq(ckpts)}"
        os.rename(tmp, target)
        os.symlink(target.name, tmp_link)  # relative: the run directory stays relocatable
        os.replace(tmp_link, link)  # the commit point
        target = None  # published: no longer ours to remove
        fsync_dir(ckpts)
    except OSError as e:
        for leftover in (tmp, target):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
        tmp_link.unlink(missing_ok=True)
        raise RunError(f"cannot save checkpoint {link}: {cause(e)}") from None
    hashes = {n: sha256(d) for n, d in files.items()}  # meta.json too: it is read as well
    _update_manifest(ckpts, which, {"dir": os.readlink(link), "files": hashes,
                                    "metrics": meta.get("metrics")})
    if previous and previous != os.readlink(link) and _SEQ_DIR.fullmatch(previous):
        shutil.rmtree(ckpts / previous, ignore_errors=True)  # leftovers: clean_stale
    return link


def _update_manifest(ckpts: Path, which: str, entry: dict[str, Any]) -> None:
    try:
        manifest = json.loads((ckpts / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    manifest[which] = entry
    atomic_write_text(ckpts / MANIFEST, json.dumps(manifest, indent=2))


def clean_stale(run_dir: Path) -> list[Path]:
    """Remove `.tmp-*` leftovers and `.best-*`/`.last-*` dirs no symlink points to."""
    run_dir = Path(run_dir)
    ckpts = RunDir(run_dir).checkpoints
    live = {os.readlink(ckpts / w) for w in WHICH if (ckpts / w).is_symlink()}
    candidates = [p for p in run_dir.glob(".tmp-*")]
    if ckpts.is_dir():
        candidates += [p for p in ckpts.iterdir() if p.name.startswith(".tmp-")
                       or (_SEQ_DIR.fullmatch(p.name) and p.name not in live)]
    for p in sorted(candidates):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError as e:
            raise RunError(f"cannot remove stale {p}: {cause(e)}") from None
    return sorted(candidates)


# ---------------------------------------------------------------------------- loading


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint: weights on the CPU and its meta.json (config, layout, classes)."""

    dir: Path
    state_dict: dict[str, torch.Tensor]
    meta: dict

    def experiment(self) -> Experiment:
        """The training config stored in meta.json. Raises CheckpointError naming the first
        field that does not validate."""
        try:
            return Experiment.model_validate(self.meta["config"])
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise CheckpointError(f"{self.dir / META}: config.{loc}: {first['msg']}") from None


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Load and verify a checkpoint; raise CheckpointError (one line naming the path)."""
    ckpt = checkpoint_dir(Path(path))
    real = ckpt.resolve()  # read both files from one directory even if `best` is re-pointed
    meta = read_meta(real, ckpt)
    data = read_limited(real / WEIGHTS, MAX_WEIGHTS_BYTES, ckpt / WEIGHTS)
    return _verified(ckpt, real, meta, data)


def _verified(ckpt: Path, real: Path, meta: dict, data: bytes) -> LoadedCheckpoint:
    """The weights `data` parsed, checked against meta.json's hash and layout."""
    weights = ckpt / WEIGHTS
    if not data:
        raise CheckpointError(f"{weights}: empty file (0 bytes)")
    try:
        state_dict = safetensors.torch.load(data)
    except (SafetensorError, ValueError, TypeError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{weights}: not a valid safetensors file, truncated or "
                              f"corrupt ({cause(e)})") from None
    verify_hash(weights, data, meta, real)
    check_layout(weights, meta, state_dict)
    return LoadedCheckpoint(dir=ckpt, state_dict=state_dict, meta=meta)


def checkpoint_files(path: Path) -> dict[str, bytes]:
    """The verified weights and meta.json of a checkpoint (or run directory), as bytes."""
    ckpt = checkpoint_dir(Path(path))
    real = ckpt.resolve()
    out = {name: read_limited(real / name, limit, ckpt / name)
           for name, limit in ((META, MAX_META_BYTES), (WEIGHTS, MAX_WEIGHTS_BYTES))}
    meta = parse_meta(out[META], ckpt / META)
    verify_manifest(ckpt / META, sha256(out[META]), real)
    _verified(ckpt, real, meta, out[WEIGHTS])
    return out


def checkpoint_from_files(files: dict[str, bytes], where: Path) -> LoadedCheckpoint:
    """A checkpoint held in memory (`checkpoint_files`), with every check `load_checkpoint`
    makes; `where` names it in messages."""
    for name, limit in ((META, MAX_META_BYTES), (WEIGHTS, MAX_WEIGHTS_BYTES)):
        data = files.get(name)
        if not isinstance(data, bytes):
            raise CheckpointError(f"{where / name}: missing")
        if len(data) > limit:
            raise CheckpointError(f"{where / name}: implausibly large ({len(data)} bytes, "
                                  f"limit {limit}); refusing to read it")
    meta = parse_meta(files[META], where / META)
    return _verified(where, where, meta, files[WEIGHTS])


def write_checkpoint_files(path: Path, files: dict[str, bytes]) -> Path:
    """Write a checkpoint directory from `checkpoint_files` (created if missing; each file
    replaced atomically, the weights first). Raises RunError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create {path}: {cause(e)}") from None
    for name in (WEIGHTS, META):  # meta.json last: it holds the hash of the weights
        atomic_write_bytes(path / name, files[name])
    return path


def load_train_state(ckpt_dir: Path) -> dict:
    """The resume state of a `last` checkpoint, verified and loaded with `weights_only=True`."""
    # release tuple, so a pre-release of 2.10 (2.10.0a0) counts as 2.10
    if Version(torch.__version__).release[:2] < MIN_TORCH:
        raise CheckpointError(f"refusing to unpickle training state with torch {torch.__version__}"
                              f": its weights-only loader has known flaws; need torch >= 2.10")
    ckpt = checkpoint_dir(Path(ckpt_dir))
    real = ckpt.resolve()
    meta = read_meta(real, ckpt)
    path = ckpt / TRAIN_STATE
    data = read_limited(real / TRAIN_STATE, MAX_TRAIN_STATE_BYTES, path)
    verify_hash(path, data, meta, real)
    try:
        # weights_only=True: tensors and plain containers only; never runs code from the file
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, ...: all mean "unusable"
        why = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        detail = (f"it references {why.group(1)}, which weights_only loading does not allow"
                  if why else f"{type(e).__name__}: {cause(e).split('. ')[0]}")
        raise CheckpointError(f"{path}: refused to load ({detail})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(state).__name__}")
    return state

"""Verifying a checkpoint as it is read: sizes before reading, meta.json's format, version and
schema, every file's sha256 against meta.json and the run's manifest, and the weights' layout
against the config. Every failure is one CheckpointError line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import torch
from pydantic import ValidationError

from fcnet_cli.config import ModelConfig
from fcnet_cli.engine.model import build_model, member_configs
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.metaschema import validate_meta
from fcnet_cli.errors import CheckpointError, cause

__all__ = ["FORMAT", "MAX_META_BYTES", "MAX_TRAIN_STATE_BYTES", "MAX_WEIGHTS_BYTES",
           "META_KEYS", "VERSION", "check_layout", "parse_meta", "read_limited", "read_meta",
           "sha256", "verify_hash", "verify_manifest"]

FORMAT, VERSION = "fcnet-checkpoint", 1  # meta.json "format"/"version" this fcnet writes
META_KEYS = ("config", "in_features", "n_classes", "classes", "normalization")
MAX_WEIGHTS_BYTES = 4 << 30  # 4 GiB: far beyond any MLP this tool trains
MAX_TRAIN_STATE_BYTES = 8 << 30  # optimizer state (Adam) is ~2× the weights
MAX_META_BYTES = 10_000_000
META, MANIFEST = RunDir.META, RunDir.MANIFEST


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_limited(path: Path, limit: int, shown: Path) -> bytes:
    """Read `path` (named `shown` in messages) after checking it is a sane regular file."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{shown}: not a regular file")
        if st.st_size > limit:
            raise CheckpointError(f"{shown}: implausibly large ({st.st_size} bytes, "
                                  f"limit {limit}); refusing to read it")
        with open(path, "rb") as f:
            data = f.read(st.st_size + 1)  # its known size: no buffer of `limit` bytes
        if len(data) > limit:
            raise CheckpointError(f"{shown}: grew to over {limit} bytes while being read")
        return data
    except FileNotFoundError:
        raise CheckpointError(f"{shown}: missing") from None
    except OSError as e:
        raise CheckpointError(f"{shown}: cannot read: {cause(e)}") from None


def read_meta(real: Path, ckpt: Path) -> dict:
    path = ckpt / META
    raw = read_limited(real / META, MAX_META_BYTES, path)
    meta = parse_meta(raw, path)
    verify_manifest(path, sha256(raw), real)
    return meta


def parse_meta(raw: bytes, path: Path) -> dict:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({cause(e)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    check_format(path, meta)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: missing key(s) {', '.join(missing)}")
    validate_meta(meta, path)
    return meta


def check_format(path: Path, meta: dict) -> None:
    """Refuse what is not an fcnet checkpoint, or one written by a newer fcnet."""
    fmt, version = meta.get("format"), meta.get("version")
    if fmt != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {fmt!r} (expected {FORMAT!r})")
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{path}: checkpoint version must be a positive integer "
                              f"(got {version!r})")
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than this fcnet "
                              f"reads (version {VERSION}); upgrade fcnet to load it")


def verify_hash(path: Path, data: bytes, meta: dict, real_dir: Path) -> None:
    """Compare `data`'s sha256 with meta.json and, inside a run's checkpoints/, the manifest."""
    expected = (meta.get("sha256") or {}).get(path.name)
    actual = sha256(data)
    if expected is None:
        raise CheckpointError(f"{path}: {META} records no sha256 for {path.name}")
    if actual != expected:
        raise CheckpointError(f"{path}: sha256 {actual[:12]}… does not match {META} "
                              f"({str(expected)[:12]}…); the file was modified or corrupted")
    verify_manifest(path, actual, real_dir)


def verify_manifest(path: Path, actual: str, real_dir: Path) -> None:
    """Inside a run's checkpoints/, compare `actual` with the manifest's hash of the file
    (a manifest written before meta.json was hashed there has none for it: not checked)."""
    manifest_path = real_dir.parent / MANIFEST
    if real_dir.parent.name != RunDir.CHECKPOINTS or not manifest_path.exists():
        return
    try:
        raw = read_limited(manifest_path, MAX_META_BYTES, manifest_path)
        manifest = json.loads(raw.decode("utf-8"))
        entries = [e for e in manifest.values() if e.get("dir") == real_dir.name]
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise CheckpointError(f"{manifest_path}: not a valid checkpoint manifest") from None
    # no entry: a crash between publishing the checkpoint and updating the manifest
    for entry in entries:
        recorded = (entry.get("files") or {}).get(path.name)
        if recorded is not None and recorded != actual:
            raise CheckpointError(f"{path}: sha256 does not match {manifest_path}; the file "
                                  f"was modified or corrupted")


def check_layout(path: Path, meta: dict, state_dict: dict[str, torch.Tensor]) -> None:
    where = path.parent / META
    try:
        cfg = ModelConfig.model_validate((meta["config"] or {})["model"])
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{where}: config.model.{loc}: {first['msg']}") from None
    except (KeyError, TypeError):
        raise CheckpointError(f"{where}: config has no model section") from None
    in_f, n_cls = meta["in_features"], meta["n_classes"]
    if not all(type(v) is int and v > 0 for v in (in_f, n_cls)):
        raise CheckpointError(f"{where}: in_features and n_classes must be positive integers")
    regression = meta.get("task") == "regression"  # n_classes then counts the targets
    if not isinstance(meta["classes"], list) or (len(meta["classes"]) != n_cls
                                                  and not regression):
        raise CheckpointError(f"{where}: classes must list n_classes = {n_cls} names")
    try:
        members = member_configs(meta)  # a selected ensemble: each member's own widths
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    with torch.device("meta"):  # shapes only: no memory, no draw from the global RNG
        net = build_model(cfg, in_f, n_cls, "regression" if regression else "classification",
                          **members)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    for key in list(expected) + [k for k in got if k not in expected]:
        want, have = expected.get(key), got.get(key)
        if want != have:
            raise CheckpointError(
                f"{path}: layout mismatch at {key}: the config expects "
                f"{list(want) if want is not None else 'no such tensor'}, the file has "
                f"{list(have) if have is not None else 'no such tensor'}")

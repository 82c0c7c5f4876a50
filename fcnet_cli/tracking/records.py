"""A run directory as MLflow sees it: flattened params, per-epoch metric rows, final metrics,
tags and the files to log as artifacts. Plain Python: no mlflow, no torch."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from fcnet_cli.config import flatten
from fcnet_cli.engine.store.layout import RunDir

__all__ = ["ARTIFACT_FILES", "MAX_PARAM", "artifact_files", "epoch_rows", "final_metrics",
           "metric_key", "onnx_files", "params", "read_summary", "run_tags"]

ARTIFACT_FILES = (RunDir.CONFIG, RunDir.METRICS, RunDir.SUMMARY)
PLOTS = ("*.png", "*.svg", "*.pdf")  # figures `fcnet plot` writes into the run directory
MAX_PARAM = 6000  # MLflow's limit on a param value (characters)


def metric_key(name: str) -> str:
    """A metric name MLflow accepts (letters, digits, `_ - . / space`)."""
    return re.sub(r"[^\w\-./ ]", "_", name)


def params(config: dict[str, Any]) -> dict[str, str]:
    """The resolved config as `--set` names it: {"optimizer.lr": "0.1", "model.hidden": "[64]"}."""
    out = {}
    for key, value in flatten(config).items():
        text = value if isinstance(value, str) else json.dumps(value)
        out[key] = text[:MAX_PARAM]
    return out


def read_config(run_dir: Path) -> dict[str, Any]:
    data = yaml.safe_load(RunDir(run_dir).config.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = RunDir(run_dir).summary
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def epoch_rows(run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    """metrics.csv as (epoch, {metric: value}); empty and non-finite cells left out."""
    path = RunDir(run_dir).metrics
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [(int(float(row["epoch"])), row_metrics(row)) for row in csv.DictReader(f)]


def row_metrics(row: dict[str, Any]) -> dict[str, float]:
    """One metrics.csv row (or `EpochMetrics.row()`) as metric -> finite value, no `epoch`."""
    out = {}
    for key, value in row.items():
        x = _number(value)
        if key != "epoch" and x is not None:
            out[metric_key(key)] = x
    return out


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The run's end: best_<metric> at the best epoch, test_<metric>, best_epoch, seconds
    (names apart from the per-epoch ones, whose history they would otherwise join)."""
    out: dict[str, float] = {}
    for key, value in (summary.get("best") or {}).items():
        x = _number(value)
        if key not in ("epoch", "seconds") and x is not None:
            out[metric_key(f"best_{key}")] = x
    for key, value in (summary.get("test") or {}).items():
        x = _number(value) if not isinstance(value, list | dict) else None
        if key != "n" and x is not None:
            out[metric_key(f"test_{key}")] = x
    for key in ("best_epoch", "last_epoch", "seconds"):
        x = _number(summary.get(key))
        if x is not None:
            out[key] = x
    return out


def run_tags(run_dir: Path, config: dict[str, Any], summary: dict[str, Any]) -> dict[str, str]:
    """fcnet.* tags: version, engine, products, precision, seed, status, run directory."""
    versions = summary.get("versions") or {}
    tags = {
        "fcnet.run_dir": str(run_dir.resolve()),
        "fcnet.seed": str((config.get("training") or {}).get("seed", "")),
        "fcnet.dataset": str((config.get("data") or {}).get("dataset", "")),
    }
    for key in ("engine", "precision", "status", "monitor"):
        if summary.get(key) is not None:
            tags[f"fcnet.{key}"] = str(summary[key])
    if summary.get("products"):
        tags["fcnet.products"] = ",".join(str(p) for p in summary["products"])
    for name, version in versions.items():
        tags[f"fcnet.version.{name}" if name != "fcnet" else "fcnet.version"] = str(version)
    return tags


def artifact_files(run_dir: Path) -> list[Path]:
    """config.yaml, metrics.csv, summary.json and the figures made in the run directory."""
    files = [run_dir / name for name in ARTIFACT_FILES if (run_dir / name).is_file()]
    for pattern in PLOTS:
        files += sorted(run_dir.glob(pattern))
    return files


def onnx_files(run_dir: Path) -> list[Path]:
    """ONNX exports kept in the run directory (`fcnet export -o RUN_DIR/model.onnx`), with
    their sidecars."""
    found = sorted({*run_dir.glob("*.onnx"), *run_dir.glob("*/*.onnx")})
    return [f for p in found for f in (p, p.with_name(p.name + ".json")) if f.is_file()]

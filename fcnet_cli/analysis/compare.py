"""Comparison tables over run directories (and sweep directories), read back from disk.

Everything here reads what a run left behind (config.yaml, metrics.csv, summary.json,
checkpoints/*/meta.json): no torch, no rich. `display.py` renders a `Comparison`, `plots.py`
draws the figures.

    runs = load_runs(["runs/l1", "runs/l2"])      # run or sweep directories, searched recursively
    table = compare(runs, "val_accuracy")
    table.write_csv("compare.csv")
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnet_cli.analysis.comparison import MAX_SHOWN_PARAMS, Comparison, markdown_table
from fcnet_cli.config import METRICS, flatten, read_config_file
from fcnet_cli.engine.store.files import holder_alive, resolve_latest
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import UsageError
from fcnet_cli.metrics import best_first

__all__ = [
    "MAX_SHOWN_PARAMS",
    "METRICS",
    "Comparison",
    "RunRecord",
    "compare",
    "differing_params",
    "find_runs",
    "is_run_dir",
    "load_run",
    "load_runs",
    "markdown_table",
    "metric_value",
    "run_status",
    "sweep_metric",
    "swept_params",
    "test_value",
    "weight_totals",
]

IGNORED_PREFIXES = ("output.",)  # names and folders differ between runs by construction


@dataclass
class RunRecord:
    """One run directory as it is on disk."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]  # flattened config.yaml: {"optimizer.lr": 0.05, ...}
    metrics: list[dict[str, float]]  # metrics.csv rows, one per epoch
    in_features: int | None = None  # from checkpoint meta, when there is one
    n_classes: int | None = None
    name: str = ""  # label shown in tables: the path relative to the compared roots

    def column(self, key: str) -> list[float]:
        """One metrics.csv column over the epochs (NaN where missing)."""
        return [row.get(key, math.nan) for row in self.metrics]

    def layers(self) -> list[str]:
        """Linear layer names as in the metrics columns (l2_norm_<layer>)."""
        keys = self.metrics[0] if self.metrics else (self.summary.get("last") or {})
        return [k.removeprefix("l2_norm_") for k in keys if k.startswith("l2_norm_")]

    def layer_sizes(self) -> list[int] | None:
        """Weights per Linear layer, from the widths (needs in_features and n_classes)."""
        if self.in_features is None or self.n_classes is None:
            return None
        widths = [self.in_features, *self.config.get("model.hidden", []), self.n_classes]
        return [a * b for a, b in zip(widths, widths[1:], strict=False)]


def is_run_dir(path: Path) -> bool:
    """config.yaml plus summary.json, or plus the .lock of a run killed in its first epoch."""
    rd = RunDir(path)
    return rd.is_run() and (rd.summary.is_file() or rd.lock.is_file())


def run_status(path: Path, summary: dict[str, Any]) -> str:
    """summary.json's status; a run without a final one is `running` while its process
    lives and `incomplete` once it is gone (killed; `fcnet train --resume` continues it)."""
    status = summary.get("status")
    if status in (None, "running"):
        return "running" if holder_alive(path) else "incomplete"
    return str(status)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories: each path that is one, and every one found below the others."""
    found: list[Path] = []
    for raw in paths:
        path = resolve_latest(raw)
        if not path.is_dir():
            raise UsageError(f"{path}: no such directory")
        if is_run_dir(path):
            found.append(path)
            continue
        below = sorted({p.parent for name in (RunDir.SUMMARY, RunDir.LOCK)
                        for p in path.rglob(name)
                        if RunDir.CHECKPOINTS not in p.parts and is_run_dir(p.parent)})
        if not below:
            raise UsageError(f"{path}: no run directories in it (folders with summary.json and "
                             "config.yaml)")
        found.extend(below)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _float(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def load_run(path: Path) -> RunRecord:
    """Read one run directory. Raises UsageError when its files cannot be read."""
    try:
        summary_path = RunDir(path).summary
        summary = (json.loads(summary_path.read_text(encoding="utf-8"))
                   if summary_path.is_file() else {})
        config, _ = read_config_file(RunDir(path).config)  # no aliases, bounded depth
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: unreadable run directory: {e}") from None
    if not isinstance(summary, dict) or not isinstance(config, dict | None):
        raise UsageError(f"{path}: unreadable run directory: summary.json or config.yaml "
                         "is not a mapping")
    summary = {**summary, "status": run_status(path, summary)}
    record = RunRecord(path, summary, flatten(config or {}),
                       _read_metrics(RunDir(path).metrics))
    for which in RunDir.WHICH:
        meta = RunDir(path).meta(which)
        if meta.is_file():
            try:
                m = json.loads(meta.read_text(encoding="utf-8"))
                record.in_features, record.n_classes = m.get("in_features"), m.get("n_classes")
                break
            except (OSError, ValueError):
                continue
    return record


def load_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run under `paths`, named by its path relative to their common folder."""
    dirs = find_runs(paths)
    runs = [load_run(p) for p in dirs]
    if len(dirs) == 1:
        runs[0].name = dirs[0].name
    else:
        common = Path(*_common_parts([p.parts for p in dirs]))
        for r in runs:
            r.name = r.path.relative_to(common).as_posix()
    return runs


def _common_parts(parts: list[tuple[str, ...]]) -> tuple[str, ...]:
    out: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        out.append(column[0])
    return tuple(out)


def differing_params(runs: Sequence[RunRecord], exclude: Sequence[str] = ()) -> list[str]:
    """Config keys whose values are not the same in every run (output.* left out)."""
    keys = sorted({k for r in runs for k in r.config})
    return [k for k in keys if not k.startswith(IGNORED_PREFIXES) and k not in exclude
            and len({json.dumps(r.config.get(k)) for r in runs}) > 1]


def swept_params(folder: Path, runs: Sequence[RunRecord]) -> list[str]:
    """A sweep's parameters that take more than one value among its runs: the keys of
    `parameters` in its sweep.yaml in their order when it has one (a pinned one-value
    parameter is not swept), else the config keys that differ between its runs (seeds left
    out)."""
    varying = differing_params(runs, exclude=("training.seed",))
    spec = folder / "sweep.yaml"
    if spec.is_file():
        try:
            params = (read_config_file(spec)[0] or {}).get("parameters")
        except (UsageError, AttributeError):
            params = None
        if isinstance(params, dict) and params:
            return [str(k) for k in params if str(k) in varying]
    return varying


def sweep_metric(folder: Path) -> str | None:
    """The `metric` of the sweep whose folder this is (its sweep.yaml), None for any other."""
    spec = Path(folder) / "sweep.yaml"
    if not spec.is_file():
        return None
    try:
        metric = (read_config_file(spec)[0] or {}).get("metric", "val_accuracy")
    except (UsageError, AttributeError):
        return None
    return str(metric) if metric in METRICS else None


def metric_value(run: RunRecord, metric: str) -> float | None:
    """The best epoch's validation metric (None when no epoch completed)."""
    best = run.summary.get("best") or {}
    value = best.get(metric)
    return None if value is None else float(value)


def weight_totals(row: dict[str, float], run: RunRecord) -> tuple[float, float]:
    """(fraction of all weights with |w| < 1e-3, total L2 norm sqrt(Σ layers ‖W‖²)).

    The fraction weights each layer by its number of weights when the layout is known, and is
    the plain mean over layers otherwise.
    """
    layers = run.layers()
    if not layers:
        return math.nan, math.nan
    norm = math.sqrt(sum(row.get(f"l2_norm_{n}", math.nan) ** 2 for n in layers))
    sizes = run.layer_sizes()
    if sizes is None or len(sizes) != len(layers):
        sizes = [1] * len(layers)
    frac = [row.get(f"sparsity_{n}", math.nan) for n in layers]
    return sum(f * s for f, s in zip(frac, sizes, strict=True)) / sum(sizes), norm


def compare(runs: Sequence[RunRecord], metric: str = "val_accuracy") -> Comparison:
    """One row per run: differing hyperparameters, best and test metric, gap, weights, time."""
    if metric not in METRICS:
        raise UsageError(f"metric must be one of {', '.join(METRICS)} (got {metric!r})")
    params = differing_params(runs)
    test_key = "test_" + metric.removeprefix("val_")
    columns = ["name", *params, f"best_{metric}", test_key, "best_epoch", "epochs",
               "gap_accuracy", "gap_loss", "sparsity", "weight_norm", "seconds", "status"]
    rows = best_first((_row(r, params, metric, test_key) for r in runs), metric,
                      value=lambda row: row[f"best_{metric}"])
    return Comparison(metric, params, columns, rows)


def test_value(run: RunRecord, key: str) -> float | None:
    """A test metric (`test_balanced_accuracy`) of the run's best checkpoint from its
    summary.json: loss and accuracy at the top of "test", the others under "metrics"."""
    test = run.summary.get("test") or {}
    name = key.removeprefix("test_")
    value = test[name] if name in test else (test.get("metrics") or {}).get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _row(r: RunRecord, params: list[str], metric: str, test_key: str) -> dict[str, Any]:
    s = r.summary
    best = s.get("best") or {}
    gap = s.get("gap_at_best") or {}
    sparsity, norm = weight_totals(best, r) if best else (None, None)
    return {
        "run_dir": str(r.path), "name": r.name, **{p: r.config.get(p) for p in params},
        f"best_{metric}": metric_value(r, metric), test_key: test_value(r, test_key),
        "best_epoch": s.get("best_epoch"),
        # a killed run's metrics.csv may be one epoch ahead of its summary.json
        "epochs": len(r.metrics) if s.get("status") in ("running", "incomplete") else
        s.get("last_epoch"),
        "gap_accuracy": gap.get("accuracy"), "gap_loss": gap.get("loss"),
        "sparsity": sparsity, "weight_norm": norm, "seconds": s.get("seconds"),
        "status": s.get("status"),
    }

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
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnet_cli.config import METRICS, flatten, metric_mode, read_config_file
from fcnet_cli.engine.files import LOCK_FILE, holder_alive, resolve_latest
from fcnet_cli.errors import UsageError

__all__ = [
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
    "swept_params",
    "weight_totals",
]

IGNORED_PREFIXES = ("output.",)  # names and folders differ between runs by construction
MAX_SHOWN_PARAMS = 6  # differing hyperparameters shown in tables; the CSV has them all


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
    return (path / "config.yaml").is_file() and (
        (path / "summary.json").is_file() or (path / LOCK_FILE).is_file())


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
        below = sorted({p.parent for name in ("summary.json", LOCK_FILE)
                        for p in path.rglob(name)
                        if "checkpoints" not in p.parts and is_run_dir(p.parent)})
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
        summary_path = path / "summary.json"
        summary = (json.loads(summary_path.read_text(encoding="utf-8"))
                   if summary_path.is_file() else {})
        config, _ = read_config_file(path / "config.yaml")  # no aliases, bounded depth
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: unreadable run directory: {e}") from None
    if not isinstance(summary, dict) or not isinstance(config, dict | None):
        raise UsageError(f"{path}: unreadable run directory: summary.json or config.yaml "
                         "is not a mapping")
    summary = {**summary, "status": run_status(path, summary)}
    record = RunRecord(path, summary, flatten(config or {}),
                       _read_metrics(path / "metrics.csv"))
    for which in ("best", "last"):
        meta = path / "checkpoints" / which / "meta.json"
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


@dataclass
class Comparison:
    """A table, one row per run, sorted by the metric (best first)."""

    metric: str
    params: list[str]  # the hyperparameters that differ between the runs
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def shown(self) -> list[str]:
        """The columns of the displayed tables: the first MAX_SHOWN_PARAMS parameters, and
        `status` only when some run did not complete (the CSV has every column)."""
        done = all(row.get("status") == "completed" for row in self.rows)
        hidden = set(self.params[MAX_SHOWN_PARAMS:]) | ({"status"} if done else set())
        return [c for c in self.columns if c not in hidden]

    def caption(self) -> str:
        shown = self.shown()
        text = f"{len(self.rows)} runs, sorted by best {self.metric}"
        if "status" not in shown:
            text += "; all completed"
        more = len([p for p in self.params if p not in shown])
        return text + (f"; {more} more differing parameters in the CSV" if more else "")

    def headers(self) -> list[str]:
        """Labels of `shown()`: parameters by their dotted names (`optimizer.name` and
        `scheduler.name` are two different columns), the rest by short names."""
        params = set(self.params)
        return [c if c in params else _HEADERS.get(c) or c.replace("_", " ")
                for c in self.shown()]

    def priorities(self) -> list[int]:
        """For narrow terminals: 0 = always shown, higher = left out first."""
        params = [c for c in self.shown() if c in self.params]
        return [min(1 + params.index(c), 4) if c in self.params else _PRIORITY.get(c, 3)
                for c in self.shown()]

    def cells(self) -> list[list[str]]:
        """Rows as display strings, in `shown()` order."""
        params = set(self.params)
        return [[_param(row.get(c)) if c in params else _cell(row.get(c), _FORMATS.get(c))
                 for c in self.shown()] for row in self.rows]

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["run_dir", *self.columns],
                                lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
        return buf.getvalue()

    def to_markdown(self) -> str:
        return markdown_table(self.headers(), self.cells())

    def write_csv(self, path: str | Path) -> None:
        Path(path).write_text(self.to_csv(), encoding="utf-8")

    def write_markdown(self, path: str | Path) -> None:
        Path(path).write_text(self.to_markdown(), encoding="utf-8")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table ('|' in cells escaped)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    out = [line(headers), "|" + "|".join(" --- " for _ in headers) + "|"]
    return "\n".join(out + [line(r) for r in rows]) + "\n"


_HEADERS = {"name": "run", "best_val_accuracy": "best val acc", "best_val_loss": "best val loss",
            "test_accuracy": "test acc", "test_loss": "test loss", "best_epoch": "best ep",
            "best_val_balanced_accuracy": "best val bal acc", "test_balanced_accuracy":
            "test bal acc", "best_val_macro_f1": "best val F1", "test_macro_f1": "test F1",
            "best_val_rmse": "best val rmse", "test_rmse": "test rmse", "best_val_mae":
            "best val mae", "test_mae": "test mae", "best_val_r2": "best val r2",
            "test_r2": "test r2", "best_val_roc_auc": "best val AUC", "test_roc_auc": "test AUC",
            "best_val_pr_auc": "best val PR-AUC", "test_pr_auc": "test PR-AUC",
            "gap_accuracy": "gap acc", "sparsity": "|w|<1e-3", "weight_norm": "‖W‖₂",
            "seconds": "s", "ci95": "95% interval", "vs_best": "vs best"}
_PRIORITY = {"name": 0, "best_val_accuracy": 0, "best_val_loss": 0, "test_accuracy": 2,
             "test_loss": 2, "status": 1, "best_epoch": 4, "gap_accuracy": 3, "epochs": 5,
             "gap_loss": 5, "sparsity": 4, "weight_norm": 4, "seconds": 6}
_FORMATS = {"seconds": ".1f", "weight_norm": ".3f", "sparsity": ".3f"}


def _cell(v: Any, spec: str | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and spec:
        return format(v, spec)
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return json.dumps(v) if isinstance(v, list) else str(v)


def _param(v: Any) -> str:
    """A hyperparameter as written in YAML: 0.05, 1e-05, [128,64], true."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return format(v, "g")
    return json.dumps(v, separators=(",", ":")) if isinstance(v, list | dict) else str(v)


def _csv_value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list) else v


def compare(runs: Sequence[RunRecord], metric: str = "val_accuracy") -> Comparison:
    """One row per run: differing hyperparameters, best and test metric, gap, weights, time."""
    if metric not in METRICS:
        raise UsageError(f"metric must be one of {', '.join(METRICS)} (got {metric!r})")
    params = differing_params(runs)
    test_key = "test_" + metric.removeprefix("val_")
    columns = ["name", *params, f"best_{metric}", test_key, "best_epoch", "epochs",
               "gap_accuracy", "gap_loss", "sparsity", "weight_norm", "seconds", "status"]
    rows = [_row(r, params, metric, test_key) for r in runs]
    sign = -1.0 if metric_mode(metric) == "max" else 1.0
    rows.sort(key=lambda row: (row[f"best_{metric}"] is None,
                               sign * (row[f"best_{metric}"] or 0.0)))
    return Comparison(metric, params, columns, rows)


def _test_value(test: dict[str, Any], key: str) -> Any:
    """summary.json test metrics: loss/accuracy at the top, the others under "metrics"."""
    return test[key] if key in test else (test.get("metrics") or {}).get(key)


def _row(r: RunRecord, params: list[str], metric: str, test_key: str) -> dict[str, Any]:
    s = r.summary
    best = s.get("best") or {}
    gap = s.get("gap_at_best") or {}
    test = s.get("test") or {}
    sparsity, norm = weight_totals(best, r) if best else (None, None)
    return {
        "run_dir": str(r.path), "name": r.name, **{p: r.config.get(p) for p in params},
        f"best_{metric}": metric_value(r, metric), test_key: _test_value(test, test_key[5:]),
        "best_epoch": s.get("best_epoch"),
        # a killed run's metrics.csv may be one epoch ahead of its summary.json
        "epochs": len(r.metrics) if s.get("status") in ("running", "incomplete") else
        s.get("last_epoch"),
        "gap_accuracy": gap.get("accuracy"), "gap_loss": gap.get("loss"),
        "sparsity": sparsity, "weight_norm": norm, "seconds": s.get("seconds"),
        "status": s.get("status"),
    }

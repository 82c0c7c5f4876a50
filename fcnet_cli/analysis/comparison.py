"""A comparison table (one row per run or configuration) and how it is shown and written.

`compare.compare` and `seedtable.compare_configs` build a `Comparison`; the display renders
`headers()`, `cells()` and `priorities()`; `to_csv` / `to_markdown` write it. Metric columns
are named by the metric registry's display names (`best val bal acc`). No torch, no rich.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnet_cli.errors import UsageError
from fcnet_cli.metrics import base_name, label, metric_info

__all__ = ["MAX_SHOWN_PARAMS", "Comparison", "markdown_table"]

MAX_SHOWN_PARAMS = 6  # differing hyperparameters shown in tables; the CSV has them all


@dataclass
class Comparison:
    """A table, one row per run, sorted by the metric (best first)."""

    metric: str
    params: list[str]  # the hyperparameters that differ between the runs
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    picked: list[str] | None = None  # `select`: exactly these columns, whatever the width

    def _shown(self) -> list[str]:
        """The columns of the displayed tables: the first MAX_SHOWN_PARAMS parameters, and
        `status` only when some run did not complete (the CSV has every column)."""
        done = all(row.get("status") == "completed" for row in self.rows)
        hidden = set(self.params[MAX_SHOWN_PARAMS:]) | ({"status"} if done else set())
        return [c for c in self.columns if c not in hidden]

    def shown(self) -> list[str]:
        return ["name", *self.picked] if self.picked is not None else self._shown()

    def select(self, names: Sequence[str]) -> None:
        """Show exactly these columns (after the run's name), at any terminal width. A name
        is a CSV column (`vs_best`) or a header (`vs best`, `95% interval`).

        Raises UsageError for a name that is not a column of this table.
        """
        columns = [c for c in self.columns if c != "name"]
        known: dict[str, str] = {}
        for c in columns:
            for alias in (c, self._header(c).lower(), c.replace("_", " ")):
                known.setdefault(alias, c)
        picked = [known.get(n.strip()) or known.get(n.strip().lower()) for n in names]
        bad = [n.strip() for n, key in zip(names, picked, strict=True) if key is None]
        if bad or not names:
            raise UsageError(f"--columns: no column {', '.join(map(repr, bad)) or 'given'}; "
                             f"this table has: {', '.join(columns)}")
        self.picked = list(dict.fromkeys(k for k in picked if k is not None))

    def _header(self, c: str) -> str:
        if c in self.params:
            return c
        return _HEADERS.get(c) or (label(c) if base_name(c) != c or c.startswith("gap_")
                                   else c.replace("_", " "))

    def _way(self) -> str:
        return "higher is better" if metric_info(self.metric).higher_is_better \
            else "lower is better"

    def caption(self) -> str:
        shown = self.shown()
        text = f"{len(self.rows)} runs, sorted by best {self.metric} ({self._way()})"
        if "status" not in shown:
            text += "; all completed"
        more = len([p for p in self.params if p not in shown])
        return text + (f"; {more} more differing parameters in the CSV" if more else "")

    def headers(self) -> list[str]:
        """Labels of `shown()`: parameters by their dotted names (`optimizer.name` and
        `scheduler.name` are two different columns), the rest by short names."""
        return [self._header(c) for c in self.shown()]

    def priorities(self) -> list[int]:
        """For narrow terminals: 0 = always shown, higher = left out first; every column
        picked by `select` is always shown."""
        if self.picked is not None:
            return [0] * len(self.shown())
        params = [c for c in self.shown() if c in self.params]
        ranked = {f"best_{self.metric}": 0, "test_" + self.metric.removeprefix("val_"): 2}
        return [min(1 + params.index(c), 4) if c in self.params
                else ranked.get(c, _PRIORITY.get(c, 3)) for c in self.shown()]

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


_HEADERS = {"name": "run", "best_epoch": "best ep", "sparsity": "|w|<1e-3",
            "weight_norm": "‖W‖₂", "seconds": "s", "ci95": "95% interval", "vs_best": "vs best"}
_PRIORITY = {"name": 0, "status": 1, "best_epoch": 4, "gap_accuracy": 3, "epochs": 5,
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

"""Comparisons over seeds: one row per configuration, mean ± std, and which differences are noise.

When runs repeat a configuration with several seeds (a seed group from `fcnet train --seeds`,
a sweep with `seeds: N`), `compare_configs` gives one row per configuration: the metric's mean
± std over the seeds, its 95 % t-interval (cut to the metric's bounds), the test metric, and
the Welch t-test of each row against the best one ("within noise" when p ≥ 0.05). Rows are
ranked by the metric registry's direction for the metric. A seed counts once per
configuration: a standalone run that repeats a group's seed is left out (and counted in the
caption). A configuration with one seed shows its value without ±. No torch, no rich.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fcnet_cli.analysis.compare import (
    METRICS,
    Comparison,
    RunRecord,
    differing_params,
    metric_value,
    test_value,
)
from fcnet_cli.analysis.stats import CLIP_MARK, Summary, summarize, verdict
from fcnet_cli.errors import UsageError
from fcnet_cli.metrics import best_first

__all__ = ["SeedComparison", "compare_configs", "config_groups", "has_repeats"]

SEED_KEYS = ("training.seed", "training.seeds")
_SEED_SUFFIX = re.compile(r"[-_/]?seed[-_]?\d+$")


def config_groups(runs: Sequence[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """Runs grouped by configuration (every config key but the seed), in first-seen order;
    each (configuration, seed) once: a later run repeating one is left out."""
    return _grouped(runs)[0]


def _grouped(runs: Sequence[RunRecord]) -> tuple[list[tuple[str, list[RunRecord]]], int]:
    """(config_groups, the number of repeated (configuration, seed) runs left out)."""
    params = differing_params(runs, exclude=SEED_KEYS)
    groups: dict[str, list[RunRecord]] = {}
    seen: set[tuple[str, str]] = set()
    repeated = 0
    for r in runs:
        config = json.dumps([r.config.get(p) for p in params])
        seed = (config, json.dumps(r.config.get("training.seed")))
        if seed in seen:
            repeated += 1
            continue
        seen.add(seed)
        groups.setdefault(config, []).append(r)
    return [(_label(g), g) for g in groups.values()], repeated


def has_repeats(runs: Sequence[RunRecord]) -> bool:
    """True when some configuration was trained with more than one seed."""
    return any(len(g) > 1 for _, g in config_groups(runs))


def _label(runs: Sequence[RunRecord]) -> str:
    names = {_SEED_SUFFIX.sub("", r.name) or r.name for r in runs}
    return names.pop() if len(names) == 1 else runs[0].name


@dataclass
class SeedComparison(Comparison):
    """A `Comparison` whose rows are configurations; cells show mean ± std over seeds."""

    summaries: list[dict[str, Summary]] = field(default_factory=list)  # per row, per column
    csv_columns: list[str] = field(default_factory=list)
    repeated: int = 0  # runs left out: they repeat a (configuration, seed) already counted

    def caption(self) -> str:
        seeds = sum(row["seeds"] for row in self.rows)
        text = (f"{len(self.rows)} configurations, {seeds} runs, sorted by mean best "
                f"{self.metric} ({self._way()}); ± is the std over seeds; 'vs best': "
                "Welch t-test")
        if "ci95" in self.shown() and any(s.clipped for sums in self.summaries
                                          for s in sums.values()):
            text += f"; {CLIP_MARK} interval cut to the metric's range"
        if self.repeated:
            text += (f"; {self.repeated} run{'s' if self.repeated > 1 else ''} left out: same "
                     "configuration and seed as one counted")
        return text

    def shown(self) -> list[str]:
        return [c for c in super().shown() if c != "status"]

    def cells(self) -> list[list[str]]:
        params = set(self.params)
        out = []
        for row, sums in zip(self.rows, self.summaries, strict=True):
            out.append([_param_cell(row.get(c)) if c in params
                        else sums[c].text(".3f" if c.startswith("gap") else ".4f") if c in sums
                        else str(row.get(c, "-")) for c in self.shown()])
        return out

    def to_csv(self) -> str:
        plain = Comparison(self.metric, self.params, self.csv_columns, self.rows)
        return plain.to_csv()


def _param_cell(v: Any) -> str:
    if isinstance(v, float):
        return format(v, "g")
    return json.dumps(v, separators=(",", ":")) if isinstance(v, list | dict | bool) or \
        v is None else str(v)


def compare_configs(runs: Sequence[RunRecord], metric: str = "val_accuracy") -> SeedComparison:
    """One row per configuration, best mean first (by the metric's registry direction); each
    row tested against the best."""
    if metric not in METRICS:
        raise UsageError(f"metric must be one of {', '.join(METRICS)} (got {metric!r})")
    params = differing_params(runs, exclude=SEED_KEYS)
    key, test_key = f"best_{metric}", "test_" + metric.removeprefix("val_")
    built = []
    grouped, repeated = _grouped(runs)
    for label, group in grouped:
        sums = {key: summarize((metric_value(r, metric) for r in group), metric),
                test_key: summarize((test_value(r, test_key) for r in group), test_key),
                "gap_accuracy": summarize(((r.summary.get("gap_at_best") or {}).get("accuracy")
                                           for r in group), "gap_accuracy")}
        built.append((label, group, sums))
    built = best_first(built, metric, value=lambda b: b[2][key].mean if b[2][key].n else None)
    best = built[0][2][key].values if built else ()
    rows, summaries = [], []
    for i, (label, group, sums) in enumerate(built):
        row: dict[str, Any] = {"run_dir": str(group[0].path.parent), "name": label,
                               **{p: group[0].config.get(p) for p in params},
                               "seeds": len(group), "ci95": sums[key].interval() or "-",
                               "vs_best": "best" if i == 0 else verdict(sums[key].values, best)}
        for col, s in sums.items():
            row[col], row[f"{col}_std"] = s.mean, s.std
        rows.append(row)
        summaries.append(sums)
    columns = ["name", *params, "seeds", key, "ci95", test_key, "vs_best", "gap_accuracy"]
    csv_columns = ["name", *params, "seeds", key, f"{key}_std", "ci95", test_key,
                   f"{test_key}_std", "vs_best", "gap_accuracy", "gap_accuracy_std"]
    return SeedComparison(metric, params, columns, rows, summaries=summaries,
                          csv_columns=csv_columns, repeated=repeated)

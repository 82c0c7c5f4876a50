"""A sweep's leaderboard, read back from the study storage (every worker, every session).

No torch and no rich: `display.py` renders a `SweepResult`; `leaderboard.csv` is written here.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from fcnet_cli.analysis.stats import summarize, verdict
from fcnet_cli.events import FINAL_FAILS, SweepResult, TrialResult
from fcnet_cli.metrics import rank_key
from fcnet_cli.sweep.space import decode
from fcnet_cli.sweep.spec import Sweep

__all__ = ["counts", "sweep_result", "trial_result", "write_leaderboard"]

_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
           TrialState.FAIL: "fail", TrialState.RUNNING: "running",
           TrialState.WAITING: "waiting"}


def trial_result(t: FrozenTrial, sweep: Sweep) -> TrialResult:
    """A FrozenTrial and the user attributes the worker stored when it told the result."""
    a = t.user_attrs
    by_key = {p.key: p for p in sweep.params}
    params = {k: decode(by_key[k], v) if k in by_key else v for k, v in t.params.items()}
    state = _STATES.get(t.state, t.state.name.lower())
    value = t.value if t.state == TrialState.COMPLETE else a.get("value")
    return TrialResult(
        number=t.number, params=params, seed=sweep.base_exp.training.seed, state=state,
        value=value, run=None, std=a.get("std"), values=list(a.get("values", [])),
        best_epochs=list(a.get("best_epochs", [])), gap=a.get("gap"),
        seconds=float(a.get("seconds", 0.0)), run_dirs=list(a.get("run_dirs", [])),
        checkpoint=a.get("checkpoint"), status=a.get("status", state),
        reason=a.get("reason"), also=dict(a.get("also", {})))


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """done / pruned / failed (the configuration fails) / interrupted (re-run) / running /
    waiting; duplicates dropped at claim time are not counted."""
    out = dict.fromkeys(("done", "pruned", "failed", "interrupted", "running", "waiting"), 0)
    for t in trials:
        status = t.user_attrs.get("status")
        if status == "duplicate":
            continue
        if t.state == TrialState.FAIL:
            out["failed" if status in FINAL_FAILS else "interrupted"] += 1
        elif t.state == TrialState.COMPLETE:
            out["done"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
    return out


def _rank_key(sweep: Sweep) -> Any:
    """Completed trials first, best first by the metric registry's direction of the metric."""
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}

    def key(r: TrialResult) -> tuple[int, tuple[bool, float], int]:
        ranked = r.state == "complete" and r.value is not None
        return (order.get(r.state, 5), rank_key(sweep.spec.metric, r.value if ranked else None),
                r.number)
    return key


def sweep_result(sweep: Sweep, trials: Sequence[FrozenTrial],
                 *, interrupted: bool = False) -> SweepResult:
    """Every trial but dropped duplicates, completed ones ranked best first."""
    kept = [t for t in trials if t.user_attrs.get("status") != "duplicate"]
    results = sorted((trial_result(t, sweep) for t in kept), key=_rank_key(sweep))
    swept = [p.key for p in sweep.params if p.kind != "choice" or len(p.choices) > 1]
    return SweepResult(name=sweep.name, sweep_dir=str(sweep.sweep_dir), metric=sweep.spec.metric,
                       direction=sweep.direction, trials=results, swept=swept,
                       counts=counts(trials), total=sweep.total, interrupted=interrupted)


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | dict) else v


def write_leaderboard(result: SweepResult) -> str:
    """leaderboard.csv in the sweep folder: one row per trial, completed ones ranked."""
    also = sorted({k for t in result.trials for k in t.also})  # e.g. val_macro_f1
    fields = ["rank", "trial", "state", "status", f"{result.metric}_mean", f"{result.metric}_std",
              *(f"{k}_mean" for k in also), f"{result.metric}_ci95",
              f"{result.metric}_ci95_clipped", "vs_best",
              "values", *result.swept, "best_epochs",
              "gap_accuracy", "seconds", "checkpoint", "run_dirs", "reason"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    rank = 0
    top = result.best
    for t in result.trials:
        ranked = t.state == "complete" and t.value is not None
        rank += ranked
        summary = summarize(t.values, result.metric)  # the interval cut to its bounds
        row = {"rank": rank if ranked else "", "trial": t.number, "state": t.state,
               "status": t.status, f"{result.metric}_mean": t.value,
               f"{result.metric}_std": t.std,
               f"{result.metric}_ci95": _cell([summary.ci_low, summary.ci_high])
               if summary.n > 1 else "", f"{result.metric}_ci95_clipped": summary.clipped
               if summary.n > 1 else "",
               "vs_best": "" if not ranked or top is None else
               "best" if t is top else verdict(t.values, top.values),
               "values": _cell(t.values),
               "best_epochs": _cell(t.best_epochs), "gap_accuracy": t.gap,
               "seconds": round(t.seconds, 3), "checkpoint": t.checkpoint,
               "run_dirs": _cell(t.run_dirs), "reason": t.reason}
        row.update({k: _cell(t.params.get(k, "")) for k in result.swept})
        row.update({f"{k}_mean": t.also.get(k) for k in also})
        writer.writerow(row)
    path = Path(result.sweep_dir) / "leaderboard.csv"
    tmp = path.with_name(f".tmp-leaderboard-{os.getpid()}.csv")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)  # workers rewrite it in turn; a reader never sees half a file
    return str(path)

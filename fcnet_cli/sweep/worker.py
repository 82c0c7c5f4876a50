"""One sweep worker: claim trials in batches, train each layout group as one population, tell.

Every worker (this process, a local child, a process on another machine) runs the same loop:

    lock → fail lost trials → enqueue what is missing → claim a batch → unlock
    group the batch by layout → train_population per group → tell each trial its result

A trial is one configuration; `seeds: S` makes S members of it, and its value is the mean over
its members of the sweep metric at each member's best epoch.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fcnet_cli.config import ConfigError, Experiment, layout_key
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.ranking import check_binary_monitors
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.train.loop import train_population
from fcnet_cli.engine.train.population import SEED_MIX
from fcnet_cli.engine.train.tensorboard import loggers_for
from fcnet_cli.events import (
    FINAL_FAILS,
    Callback,
    EpochMetrics,
    Pruner,
    RunResult,
    StopToken,
    SweepUpdate,
)
from fcnet_cli.metrics import best_first
from fcnet_cli.sweep.leaderboard import counts, sweep_result, write_leaderboard
from fcnet_cli.sweep.space import Point, suggest_point
from fcnet_cli.sweep.spec import Sweep, schema_defaults
from fcnet_cli.sweep.store import Heartbeat, Store, worker_id

__all__ = ["Worker"]

POLL_S = 1.0  # wait between looks at the study while only other workers' trials run
TOP = 10  # leaderboard rows sent with each update


@dataclass
class Claimed:
    """A trial this worker owns until it tells the result."""

    trial: optuna.Trial
    point: Point
    exps: list[Experiment]  # one per seed
    dirs: list[Path]
    layout: str


class Pruning(Pruner):
    """The engine's pruner hook: per epoch, report each trial's mean over its seeds to Optuna
    and stop all members of the trials its pruner prunes."""

    def __init__(self, group: Sequence[Claimed], owner: Sequence[int], metric: str,
                 epochs: int):
        self.group, self.owner, self.metric, self.epochs = group, owner, metric, epochs
        self.pruned: set[int] = set()

    def observe(self, rows: list[EpochMetrics]) -> None:
        values: dict[int, list[float]] = defaultdict(list)
        for r in rows:
            v = r.value(self.metric)
            if math.isfinite(v):
                values[self.owner[r.member]].append(v)
        for i, vs in values.items():
            trial = self.group[i].trial
            epoch = rows[0].epoch
            trial.report(statistics.fmean(vs), epoch)
            if epoch < self.epochs and i not in self.pruned and trial.should_prune():
                self.pruned.add(i)

    def __call__(self, member: int, row: EpochMetrics) -> bool:
        return self.owner[member] in self.pruned


def _covers(t: optuna.trial.FrozenTrial) -> bool:
    """Does this trial stand for its configuration (so it must not be queued again)?"""
    if t.state == TrialState.FAIL:
        return t.user_attrs.get("status") in FINAL_FAILS
    return t.user_attrs.get("status") != "duplicate"


class Worker:
    """Runs a sweep's trials until none is left to claim (see the module docstring)."""

    def __init__(self, sweep: Sweep, store: Store, callbacks: Sequence[Callback] = (),
                 stop: StopToken | None = None, pruner: optuna.pruners.BasePruner | None = None,
                 seed_salt: int = 0):
        self.sweep, self.store, self.callbacks = sweep, store, list(callbacks)
        self.stop = stop or StopToken()
        self.spec = sweep.spec
        self.grid = self.spec.method == "grid"
        self.batch_trials = max(1, self.spec.max_population // self.spec.seeds)
        self.base, self.defaults = sweep.base_values, schema_defaults()
        self.owned: dict[int, Claimed | optuna.Trial] = {}
        self.data: dict[str, DataSplits] = {}
        self.report = pruner is not None or self.spec.pruner != "none"
        study = store.study
        study.pruner = pruner or _make_pruner(sweep)
        a, b, c = SEED_MIX
        seed = (self.spec.sampler_seed * a + len(store.trials()) * b + seed_salt * c) % 2**32
        study.sampler = (optuna.samplers.TPESampler(seed=seed, constant_liar=True)
                         if self.spec.method == "tpe" else optuna.samplers.RandomSampler(seed))
        self.heart = Heartbeat(store)

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Claim, train and tell until the sweep is done or `stop` is requested."""
        try:
            # before claiming: claims are held briefly, and a logger package that is missing
            # (output.* is never swept) is a usage error, not a failure of every trial
            loggers_for([self.sweep.base_exp])
            self._data(self.sweep.base_exp)
            while not self.stop.requested:
                batch = self._next_batch()
                if batch is None:
                    break
                if not batch:
                    time.sleep(POLL_S)  # other workers' trials: they finish or go stale
                    continue
                self._train_batch(batch)
        finally:
            reason = (f"interrupted ({self.stop.reason}) before it finished" if self.stop.reason
                      else "the worker stopped on an error before the trial finished")
            for number in list(self.owned):
                self._fail(number, "interrupted", reason)
            self.heart.close()

    def _next_batch(self) -> list[Claimed] | None:
        """A batch of claimed trials; [] to wait for other workers; None when done."""
        with self.store.lock():
            self.store.fail_lost_trials()
            self._prepare(self.store.trials())
            batch = self._claim_grid() if self.grid else self._ask()
        self._drop_duplicates(batch)
        batch = [c for c in batch if c.trial.number in self.owned]
        if batch:
            return batch
        return [] if self.store.others_running() else None

    def _prepare(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Queue every grid point without a trial, and re-queue interrupted configurations."""
        covered = {t.user_attrs.get("key") for t in trials if _covers(t)}
        if self.grid:
            todo = [(p.key, self._fixed(p)) for p in self.sweep.points]
        else:
            todo = [(str(t.user_attrs["key"]), t.params) for t in trials
                    if t.state == TrialState.FAIL and "key" in t.user_attrs]
        for key, params in todo:
            if key not in covered:
                self.store.study.enqueue_trial(params, user_attrs={"key": key})
                covered.add(key)

    def _fixed(self, point: Point) -> dict[str, Any]:
        by_key = {p.key: p for p in self.sweep.params}
        return {k: by_key[k].encode(v) for k, v in point.params.items()}

    def _claim_grid(self) -> list[Claimed]:
        """Claim WAITING trials of one layout (the first waiting trial's), in number order."""
        out: list[Claimed] = []
        layout = None
        for t in self.store.trials((TrialState.WAITING,)):
            if len(out) >= self.batch_trials:
                break
            lay = self.sweep.layouts.get(str(t.user_attrs.get("key")))
            if layout is not None and lay != layout:
                continue
            trial = self.store.claim(t)
            if trial is not None:
                c = self._start(trial)
                if c is not None:
                    out.append(c)
                    layout = lay
        return out

    def _ask(self) -> list[Claimed]:
        trials = self.store.trials()
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        left = max(0, self.sweep.total - sum(_covers(t) for t in trials))
        out = []
        for _ in range(min(self.batch_trials, waiting + left)):
            c = self._start(self.store.study.ask())
            if c is not None:
                out.append(c)
        return out

    def _start(self, trial: optuna.Trial) -> Claimed | None:
        """Suggest the trial's values, record ownership, build one experiment per seed."""
        self.owned[trial.number] = trial
        self.heart.add(self.store.trial_id(trial.number))
        trial.set_user_attr("worker", worker_id())
        point = suggest_point(trial, self.sweep.params, self.base, self.defaults, grid=self.grid)
        trial.set_user_attr("key", point.key)
        seeds = range(self.spec.seeds)
        base_seed = self.sweep.base_exp.training.seed
        names = [f"{trial.number:04d}-seed{base_seed + i}" for i in seeds]
        try:
            exps = [self.sweep.experiment(point, i, f"{self.sweep.name}-{n}")
                    for i, n in zip(seeds, names, strict=True)]
        except ConfigError as e:
            self._fail(trial.number, "invalid", "; ".join(e.problems))
            return None
        dirs = [self.sweep.sweep_dir / "trials" / n for n in names]
        c = Claimed(trial, point, exps, dirs, layout_key(exps[0]))
        self.owned[trial.number] = c
        return c

    def _drop_duplicates(self, batch: list[Claimed]) -> None:
        """Grid: a point queued twice (workers racing on a remote storage) runs once; the
        lowest-numbered live trial of a point keeps it."""
        if not self.grid or not batch:
            return
        first: dict[str, int] = {}
        for t in self.store.trials():
            key = t.user_attrs.get("key")
            if key is not None and _covers(t):
                first[key] = min(first.get(key, t.number), t.number)
        for c in batch:
            if first.get(c.point.key, c.trial.number) < c.trial.number:
                self._fail(c.trial.number, "duplicate",
                           f"trial {first[c.point.key]} runs this configuration")

    # ------------------------------------------------------------------ training

    def _train_batch(self, batch: list[Claimed]) -> None:
        groups: dict[str, list[Claimed]] = defaultdict(list)
        for c in batch:
            groups[c.layout].append(c)
        for group in groups.values():
            if self.stop.requested:
                return  # `run` fails what is still owned as interrupted
            self._update(f"population of {len(group) * self.spec.seeds} members: "
                         f"{len(group)} trials × {self.spec.seeds} seeds")
            self._train_group(group)
            self._update()

    def _data(self, exp: Experiment) -> DataSplits:
        key = json.dumps(exp.data.model_dump(mode="json"), sort_keys=True)
        if key not in self.data:
            data = load_data(exp.data, task=exp.task)
            check_binary_monitors([("metric", self.spec.metric)], data.n_classes, data.task)
            self.data[key] = data
        return self.data[key]

    def _train_group(self, group: list[Claimed]) -> None:
        exps = [e for c in group for e in c.exps]
        owner = [i for i, c in enumerate(group) for _ in c.exps]
        pruning = Pruning(group, owner, self.spec.metric, exps[0].training.epochs) \
            if self.report else None
        try:
            results = train_population(
                exps, callbacks=self.callbacks, stop=self.stop,
                run_dirs=[d for c in group for d in c.dirs], eager_checkpoints=False,
                pruner=pruning, data=self._data(exps[0]))
        except Exception as e:  # not KeyboardInterrupt: `run` fails the batch as interrupted
            if len(group) > 1 and not self.stop.requested:
                for c in group:  # find the trial that raises: train each alone
                    for d in c.dirs:
                        shutil.rmtree(d, ignore_errors=True)
                    self._train_group([c])
                return
            for c in group:
                self._fail(c.trial.number, "error", f"{type(e).__name__}: {e}".strip())
            return
        for i, c in enumerate(group):
            self._tell(c, [r for r, o in zip(results, owner, strict=True) if o == i])

    # ------------------------------------------------------------------ results

    def _tell(self, c: Claimed, runs: list[RunResult]) -> None:
        attrs = _summary(runs, self.spec.metric)
        statuses = [r.status for r in runs]
        for status in ("interrupted", "diverged", "failed"):
            if status in statuses:
                run = runs[statuses.index(status)]
                reason = f"{run.name}: {run.reason or status}"
                self._fail(c.trial.number, "error" if status == "failed" else status, reason,
                           attrs)
                return
        if "pruned" in statuses:
            run = runs[statuses.index("pruned")]
            self._finish(c.trial.number, TrialState.PRUNED, None,
                         {**attrs, "status": "pruned", "reason": run.reason})
            return
        self._finish(c.trial.number, TrialState.COMPLETE, attrs["value"],
                     {**attrs, "status": "complete"})

    def _fail(self, number: int, status: str, reason: str,
              attrs: dict[str, Any] | None = None) -> None:
        self._finish(number, TrialState.FAIL, None,
                     {**(attrs or {}), "status": status, "reason": reason})

    def _finish(self, number: int, state: TrialState, value: float | None,
                attrs: dict[str, Any]) -> None:
        owned = self.owned.pop(number)
        trial = owned.trial if isinstance(owned, Claimed) else owned
        self.heart.discard(self.store.trial_id(trial.number))
        try:
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            self.store.study.tell(trial, value, state=state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed as stale by another worker meanwhile: its retry runs the config

    def _update(self, message: str | None = None) -> None:
        """Rewrite leaderboard.csv and send counts and the leaderboard's top to callbacks."""
        trials = self.store.trials()
        result = sweep_result(self.sweep, trials)
        write_leaderboard(result)
        top = [t for t in result.trials if t.state == "complete"][:TOP]
        update = SweepUpdate(counts(trials), self.sweep.total, top, self.spec.metric,
                             result.swept, message)
        for cb in self.callbacks:
            cb.on_sweep_update(update)


def _summary(runs: list[RunResult], metric: str) -> dict[str, Any]:
    """What the leaderboard shows of a trial, stored as Optuna user attributes."""
    best = [(r, r.best) for r in runs if r.best is not None]
    values = [b.value(metric) for _, b in best]
    out: dict[str, Any] = {
        "values": values, "best_epochs": [b.epoch for _, b in best],
        "value": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
        "gap": statistics.fmean(b.gap_accuracy for _, b in best) if best else None,
        "seconds": max((r.seconds for r in runs), default=0.0),
        "epochs": [len(r.history) for r in runs],
        "run_dirs": [r.run_dir for r in runs],
        # the other headline metrics at the same best epochs, mean over seeds
        "also": {k: statistics.fmean(b.metrics[k] for _, b in best)
                 for k in sorted(best[0][1].metrics) if k != metric} if best else {},
    }
    if best:
        run, _ = best_first(best, metric, value=lambda rb: rb[1].value(metric))[0]
        ckpt = RunDir(run.run_dir or "").checkpoint(RunDir.BEST)
        out["checkpoint"] = str(ckpt) if run.run_dir and ckpt.exists() else None
    return out


def _make_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    if sweep.spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if sweep.spec.pruner == "hyperband":
        swept = any(p.key == "training.epochs" for p in sweep.params)
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource="auto" if swept else sweep.base_exp.training.epochs)
    return optuna.pruners.NopPruner()


"""`fcnet sweep ... --ensemble N`: the sweep's top N trials of the best trial's layout, joined
into one ensemble (`engine.ensemble.join_checkpoints`).

    <sweep dir>/ensembles/top<N>/<run-id>/    an ensemble run directory (eval, predict, export)

Each member is a trial's best checkpoint (its best seed's, with `seeds: S`); members may
differ in every hyperparameter a population may (lr, momentum, penalties, dropout, schedule,
seed) but share the layout. Fewer than N trials of that layout: the ensemble has as many.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fcnet_cli.config import Experiment, layout_key
from fcnet_cli.engine.store.checkpoint import load_checkpoint
from fcnet_cli.engine.store.files import new_run_dir
from fcnet_cli.engine.train.ensemble import join_checkpoints
from fcnet_cli.errors import UsageError
from fcnet_cli.events import RunResult, SweepResult, TrialResult

__all__ = ["SweepEnsemble", "ensemble_from_sweep"]


@dataclass
class SweepEnsemble:
    result: RunResult  # the ensemble's run (run_dir, test metrics with the members')
    trials: list[int]  # the trial numbers joined, best first
    asked: int  # the N asked for

    def line(self) -> str:
        short = "" if len(self.trials) == self.asked else (
            f" (only {len(self.trials)} completed trials share the best trial's layout)")
        numbers = ", ".join(f"#{t}" for t in self.trials)
        return f"ensemble of trials {numbers}{short}: {self.result.run_dir}"


def _config(trial: TrialResult) -> Experiment:
    assert trial.checkpoint is not None
    return Experiment.model_validate(load_checkpoint(Path(trial.checkpoint)).meta["config"])


def ensemble_from_sweep(result: SweepResult, n: int) -> SweepEnsemble:
    """Join the top `n` completed trials that share the best trial's layout.

    Raises:
        UsageError: n < 1, or no completed trial with a checkpoint.
    """
    if n < 1:
        raise UsageError(f"--ensemble must be at least 1 (got {n})")
    done = [t for t in result.trials if t.state == "complete" and t.checkpoint
            and Path(t.checkpoint).is_dir()]
    if not done:
        raise UsageError(f"{result.sweep_dir}: no completed trial with a checkpoint to "
                         "build an ensemble from")
    best = _config(done[0])
    layout = layout_key(best)
    chosen: list[TrialResult] = []
    for trial in done:
        if len(chosen) == n:
            break
        exp = best if trial is done[0] else _config(trial)
        if layout_key(exp) == layout:
            chosen.append(trial)
    run_dir = new_run_dir(Path(result.sweep_dir) / "ensembles", f"top{n}")
    sources = [{"trial": t.number, "checkpoint": t.checkpoint, "params": t.params,
                "value": t.value} for t in chosen]
    joined = join_checkpoints(run_dir, best, [Path(str(t.checkpoint)) for t in chosen], sources)
    return SweepEnsemble(joined, [t.number for t in chosen], n)

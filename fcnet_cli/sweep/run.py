"""Hyperparameter sweeps on Optuna, every group of same-layout trials trained as one population.

    sweep = load_sweep("experiments/sweeps/quick.yaml")
    result = run_sweep(sweep)
    print(result.best.value, result.best.checkpoint)

`runs/<sweep-name>/` holds the study (an Optuna journal file, unless `storage` names a
database), `sweep.yaml` (the resolved spec), `leaderboard.csv`, and one run directory per trial
member under `trials/` in the layout of `fcnet train`. Running the same sweep again resumes it:
finished trials are kept, unfinished configurations are trained again.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import optuna
import torch

from fcnet_cli.engine.train.cpus import available_cpus
from fcnet_cli.errors import RunError
from fcnet_cli.events import Callback, StopToken, SweepResult
from fcnet_cli.sweep.leaderboard import sweep_result, write_leaderboard
from fcnet_cli.sweep.load import load_sweep
from fcnet_cli.sweep.spec import Sweep
from fcnet_cli.sweep.store import Store, open_store
from fcnet_cli.sweep.worker import Worker
from fcnet_cli.yamlio import dump_yaml

__all__ = ["load_sweep", "run_sweep"]


def run_sweep(sweep: Sweep, *, storage: str | None = None, workers: int = 1,
              callbacks: Sequence[Callback] = (), stop: StopToken | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> SweepResult:
    """Run (or resume) a sweep until every configuration has a result.

    Args:
        storage: a database URL shared by workers on many machines (default: the journal
            file in the sweep folder).
        workers: local worker processes, this one included (the others run without
            callbacks); each gets an equal share of the CPU threads.
        callbacks: engine events of this process's populations, plus `on_sweep_update`.
        stop: set it (e.g. from a signal handler) to stop at the next batch boundary; the
            trials still running are failed as interrupted and re-run by the next run.
        pruner: an Optuna pruner used instead of the spec's `pruner` (this process only).

    Returns:
        The leaderboard as the storage holds it (every worker's trials).

    Raises:
        ConfigError: the study exists with a different spec. RunError: storage unreachable,
        or a worker process failed.
    """
    stop = stop or StopToken()
    store = open_store(sweep, storage)
    _write_spec(sweep)
    threads = torch.get_num_threads()
    # each worker gets an equal share of the cores this process may use (affinity, cgroup)
    share = max(1, (sweep.base_exp.training.threads or available_cpus()) // max(1, workers))
    queue: Any = mp.get_context("spawn").SimpleQueue() if workers > 1 else None
    children = [_spawn(sweep, storage, i, share, queue) for i in range(1, workers)]
    torch.set_num_threads(share)
    try:
        salt = 0 if storage is None else hash(os.getpid()) % 1000 + 1
        Worker(sweep, store, callbacks, stop, pruner, seed_salt=salt).run()
    finally:
        torch.set_num_threads(threads)
        errors = _join(children, stop, queue)
    result = collect(sweep, store, interrupted=stop.requested)
    if errors:
        raise RunError("\n".join(errors))
    return result


def collect(sweep: Sweep, store: Store, *, interrupted: bool = False) -> SweepResult:
    result = sweep_result(sweep, store.trials(), interrupted=interrupted)
    write_leaderboard(result)
    return result


def _write_spec(sweep: Sweep) -> None:
    path = sweep.sweep_dir / "sweep.yaml"
    tmp = path.with_name(f".tmp-sweep-{os.getpid()}.yaml")
    tmp.write_text(dump_yaml(sweep.resolved()), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- local worker processes


def _spawn(sweep: Sweep, storage: str | None, index: int, threads: int,
           queue: Any) -> BaseProcess:
    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked torch or storage state
    proc = ctx.Process(target=_child, args=(sweep, storage, index, threads, queue),
                       name=f"fcnet-sweep-worker-{index}", daemon=False)
    proc.start()
    return proc


def _child(sweep: Sweep, storage: str | None, index: int, threads: int, queue: Any) -> None:
    """Entry point of a local worker process: the same loop, without callbacks."""
    stop = StopToken()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    torch.set_num_threads(threads)
    try:
        store = open_store(sweep, storage)
        Worker(sweep, store, (), stop, None, seed_salt=index).run()
    except Exception as e:
        queue.put(f"worker {index} (pid {os.getpid()}): {e}")
        raise SystemExit(1) from None
    raise SystemExit(130 if stop.requested else 0)


def _join(children: list[BaseProcess], stop: StopToken, queue: Any) -> list[str]:
    """Wait for the local workers; pass a stop on to them (once)."""
    passed = False
    while any(p.is_alive() for p in children):
        for p in children:
            p.join(timeout=0.2)
        if stop.requested and not passed:
            for p in children:
                if p.is_alive() and p.pid is not None:
                    os.kill(p.pid, signal.SIGINT)
            passed = True
    errors = []
    while queue is not None and not queue.empty():
        errors.append(str(queue.get()))
    for p in children:
        if p.exitcode not in (0, 130, 143) and not errors:
            errors.append(f"{p.name} exited with code {p.exitcode}")
    return errors


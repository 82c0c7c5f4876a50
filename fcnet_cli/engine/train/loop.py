"""The training loop: one loop for one run (K = 1) and for a population of K members.

    exp = load_experiment("experiments/digits.yaml")
    result = train(exp)
    print(result.best.val_accuracy)
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from fcnet_cli.config import Experiment, layout_key
from fcnet_cli.engine.data.embedded import embed_splits
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.ranking import check_binary_monitors, watched_metrics
from fcnet_cli.engine.store import records as records
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.train import finish, optim
from fcnet_cli.engine.train.cpus import apply_threads
from fcnet_cli.engine.train.defaults import (
    data_facts,
    ensemble_as_run,
    may_ensemble,
    resolve_defaults,
)
from fcnet_cli.engine.train.device import pick_device
from fcnet_cli.engine.train.ensemble import by_layout, ensemble_members, train_ensemble
from fcnet_cli.engine.train.graphs import BF16_REASON, GraphEpoch, epoch_mode, matmul_precision
from fcnet_cli.engine.train.losses import EVAL_ROWS, class_weight_table, validate
from fcnet_cli.engine.train.members import Member
from fcnet_cli.engine.train.memory import check_memory
from fcnet_cli.engine.train.state import PopulationState
from fcnet_cli.engine.train.steps import AutogradStep, ExplicitStep, fast_path_reason
from fcnet_cli.engine.train.tensorboard import loggers_for
from fcnet_cli.errors import UsageError
from fcnet_cli.events import (
    BatchProgress,
    Callback,
    EpochMetrics,
    Pruner,
    RunResult,
    RunStart,
    StopToken,
)

__all__ = ["BatchLr", "pick_device", "preflight", "train", "train_population"]

BatchLr = Callable[[int, torch.Tensor], list[float]]  # (step, (K,) loss) -> lr per member


def train(exp: Experiment, *, callbacks: Sequence[Callback] = (), stop: StopToken | None = None,
          resume: Path | None = None, data: DataSplits | None = None,
          run_dir: Path | None = None, eager_checkpoints: bool = True) -> RunResult:
    """Train one experiment (a population of one). `resume` continues a run directory.

    `data`: splits already loaded (e.g. `load_frame` of an in-memory table) instead of
    `exp.data`'s; `run_dir`: the run directory to write instead of a new one under
    `output.dir/name`; `eager_checkpoints=False`: write the records and checkpoints once, when
    the run ends (a run directory nobody watches). torch uses `training.threads` CPU threads
    (default: the cores available to the process) while it trains; the previous setting is
    restored afterwards. `model.ensemble: N > 1` trains N members as one population and
    returns the ensemble's result (`engine.ensemble.train_ensemble`); left out, the default
    rule decides it from the data (`defaults.ensemble_rule`).
    """
    if resume is not None and may_ensemble(exp):  # as the rule decided it for the run
        exp = ensemble_as_run(exp, records.saved_experiment(resume))
    if resume is not None and exp.model.ensemble == 1:
        finish.check_resume_config(resume, exp)
    before = torch.get_num_threads()
    apply_threads(exp.training.threads)
    try:
        if may_ensemble(exp):  # model.ensemble left out: the default rule decides
            data = data or load_data(exp.data, task=exp.task)
            exp = resolve_defaults(exp, data_facts(data), ensemble=True)[0]
        if exp.model.ensemble != 1:  # members as one population, kept as one model
            # the default rule first: the ensemble's config.yaml and checkpoint record it
            # every width's population trains on, and selection scores, the same embedding
            data = embed_splits(data or load_data(exp.data, task=exp.task), exp.model,
                                exp.data.split_seed)
            if stop is not None:
                stop.mark_data_ready()
            exp = resolve_defaults(exp, data_facts(data))[0]
            if resume is None:
                _check_ensemble(exp, data)
            return train_ensemble(exp, train_population, callbacks=callbacks, stop=stop,
                                  resume=resume, data=data, run_dir=run_dir)
        if resume is not None:
            return train_population([exp], callbacks=callbacks, stop=stop, run_dirs=[resume],
                                    resume=True, data=data)[0]
        return train_population([exp], callbacks=callbacks, stop=stop, data=data,
                                run_dirs=None if run_dir is None else [run_dir],
                                eager_checkpoints=eager_checkpoints)[0]
    finally:
        torch.set_num_threads(before)


def preflight(exps: Sequence[Experiment], data: DataSplits, device: torch.device
              ) -> torch.Tensor | None:
    """Refuse a population before anything is allocated or written (watched metrics the
    task lacks, the memory estimate, class weights that do not fit the classes); return its
    (K, C) class weights (None: none weighted, or regression)."""
    check_binary_monitors(watched_metrics(exps), data.n_classes, data.task)
    check_memory(exps, data.n_features, data.n_outputs, min(len(data.y_val), EVAL_ROWS),
                 device)
    if data.task == "regression":
        return None
    return class_weight_table(exps, data.y_train, data.n_classes, device)


def _check_ensemble(exp: Experiment, data: DataSplits) -> None:
    """`preflight` of each population of an ensemble, before its run directory exists."""
    facts = data_facts(data)
    members = [resolve_defaults(m, facts)[0] for m in ensemble_members(exp)]
    device = pick_device(exp.training.device)
    for group in by_layout(members):
        preflight([members[i] for i in group], data, device)


def train_population(exps: Sequence[Experiment], *, callbacks: Sequence[Callback] = (),
                     stop: StopToken | None = None, run_dirs: Sequence[Path] | None = None,
                     resume: bool = False, eager_checkpoints: bool = True,
                     pruner: Pruner | None = None, data: DataSplits | None = None,
                     batch_lr: BatchLr | None = None) -> list[RunResult]:
    """Train K experiments of one layout together; member k ends as its standalone run would.

    Args:
        exps: the members; they must share `config.layout_key`.
        run_dirs: one directory per member (created when missing); default: a new run
            directory under each member's `output.dir/name`.
        resume: continue each run directory from its `last` checkpoint.
        eager_checkpoints: write `best` when it improves and `last` every epoch (a run);
            otherwise write both when the member ends (a sweep).
        pruner: asked after every epoch whether to stop a member early.
        data: already-loaded splits (a sweep loads them once per layout).
        batch_lr: `(step, loss) -> lrs`, called every step after the loss and before the
            update, with the step's index over the run and its (K,) loss: the learning rate
            of each member for this update (the lr range test). It reads the loss each step,
            so the run keeps the per-step loop (no CUDA graphs).
    """
    with contextlib.ExitStack() as locks:
        if resume:  # a busy run is refused before anything is loaded, read or removed
            run_dirs = records.prepare_run_dirs(exps, run_dirs, resume=True, locks=locks)
        loggers = loggers_for(exps)  # output.tensorboard: honoured here, whoever calls
        for logger in loggers:
            locks.callback(logger.close)
        trainer = _Trainer(exps, [*callbacks, *loggers], stop or StopToken(), pruner,
                           eager=eager_checkpoints, data=data, batch_lr=batch_lr)
        return trainer.run(run_dirs, locks, resume=resume)


class _Trainer:
    """One population's training: its state, its step, the epochs, the members' records."""

    def __init__(self, exps: Sequence[Experiment], callbacks: Sequence[Callback],
                 stop: StopToken, pruner: Pruner | None, *, eager: bool,
                 data: DataSplits | None, batch_lr: BatchLr | None = None):
        self.exps, self.callbacks, self.stop, self.pruner, self.eager = exps, callbacks, stop, \
            pruner, eager
        self.batch_lr = batch_lr
        first = exps[0]
        if any(e.model.ensemble != 1 for e in exps):
            raise UsageError("model.ensemble > 1 trains through train() (engine.ensemble), "
                             "not as one member of a population")
        if len({layout_key(e) for e in exps}) > 1:
            raise ValueError("members of one population must share a layout (config.layout_key)")
        self.device = pick_device(first.training.device)
        # model.num_embeddings: fitted on this population's training split (shared: data.*)
        self.data = embed_splits(data or load_data(first.data, task=first.task), first.model,
                                 first.data.split_seed).to(self.device)
        stop.mark_data_ready()  # no run directory was written before this line
        # fields left out are resolved from the data (engine/train/defaults.py), before anything
        # reads them; the same rule for every member keeps their layout shared
        facts = data_facts(self.data)
        self.exps = exps = [resolve_defaults(e, facts)[0] for e in exps]
        first = exps[0]
        self.regression = self.data.task == "regression"
        self.epochs, self.batch_size = first.training.epochs, first.training.batch_size
        self.n_train = len(self.data.y_train)
        self.n_batches = math.ceil(self.n_train / self.batch_size)
        if first.model.batch_norm and self.n_train % self.batch_size == 1:
            self.n_batches -= 1  # batch norm cannot train on a last batch of one example
        self.results: dict[int, RunResult] = {}

    # ------------------------------------------------------------------ set-up

    def run(self, run_dirs: Sequence[Path] | None, locks: contextlib.ExitStack, *,
            resume: bool) -> list[RunResult]:
        d = self.data
        weights = preflight(self.exps, d, self.device)  # refused before anything is written
        # the engine: the hand-written backward unless the layout needs autograd (one decision)
        reason = fast_path_reason(self.exps)
        # CUDA: each epoch without host reads, steps as graphs (engine/train/graphs.py)
        mode = epoch_mode(self.exps, self.device, reason)
        if self.batch_lr is not None:  # it reads each step's loss: the per-step loop
            mode = None
        precision = self.exps[0].training.precision
        if precision == "bf16":
            reason = BF16_REASON
        locks.enter_context(matmul_precision(self.device, precision))
        self.graphs = None if mode is None else GraphEpoch(
            capture=mode == "graph", bf16=precision == "bf16")
        self.state = PopulationState(self.exps, d.n_features, d.n_outputs, self.device,
                                     autograd=reason is not None, class_weights=weights)
        step = AutogradStep if reason is not None else ExplicitStep
        self.step = step(self.state, d.x_train, d.y_train)
        for m in self.members:
            m.engine, m.engine_reason, m.products = self.step.name, reason, self.step.products
        dirs = [Path(p) for p in run_dirs or ()] if resume else records.prepare_run_dirs(
            self.exps, run_dirs, resume=False, locks=locks)
        for m, rd in zip(self.members, dirs, strict=True):
            m.run_dir = rd
        return self._run(dirs, resume=resume)

    @property
    def members(self) -> list[Member]:
        return self.state.members

    def _run(self, dirs: list[Path], *, resume: bool) -> list[RunResult]:
        d = self.data
        self.start_epoch, self.start_batch = 0, 0
        if resume:
            states = records.load_resume_states([m.run_dir for m in self.members if m.run_dir])
            if states is not None:  # None: killed before its first checkpoint, start again
                self.start_epoch, self.start_batch = self.state.restore(
                    [s.weights for s in states], [s.train for s in states],
                    [s.best_weights for s in states])
            if self.start_epoch >= self.epochs:
                raise UsageError(f"{dirs[0]}: the run already finished all {self.epochs} epochs")
        for cb in self.callbacks:
            cb.on_run_start(RunStart(
                names=[e.name for e in self.exps], run_dirs=[str(p) for p in dirs],
                epochs=self.epochs, batches_per_epoch=self.n_batches,
                start_epoch=self.start_epoch, device=str(self.device), n_train=self.n_train,
                n_val=len(d.y_val), n_test=len(d.y_test), n_features=d.n_features,
                n_classes=d.n_outputs, task=d.task, notices=list(d.notices),
                monitor=self.exps[0].training.early_stopping.monitor))
        try:
            self._loop()
        except BaseException as err:
            # a failure (disk full, Ctrl-C without a stop token): record what is known, keep
            # the checkpoints as they are, and let the error through
            why = " ".join(str(err).split()) or type(err).__name__
            for m in self.members:
                if m.status is None:
                    m.status, m.reason = "failed", f"stopped by an error: {why}"
                    with contextlib.suppress(Exception):
                        self._finish(m)
            raise
        return [self.results[i] for i in range(len(self.exps))]

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        clip = bool(torch.isfinite(self.state.table.grad_clip).any())
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.perf_counter()
            resumed = epoch == self.start_epoch and self.state.perms is not None
            first_batch = self.start_batch if resumed else 0
            if not resumed:
                self.state.new_epoch(torch.stack([
                    torch.randperm(self.n_train, generator=m.perm_gen)
                    for m in self.members]).to(self.device))  # (K, N)
            self.state.set_lr(optim.epoch_lrs(self.members, epoch, self.epochs))
            if self.graphs is not None:  # CUDA: the same steps, no host read until the end
                if not self.graphs.run(self, epoch, first_batch):
                    return
            elif not self._batches(epoch, first_batch, clip=clip):
                return
            self._end_epoch(epoch, time.perf_counter() - t0)
            if not self.members:
                return

    def _batches(self, epoch: int, first_batch: int, *, clip: bool) -> bool:
        """The epoch's steps from `first_batch`; False when the loop ends here."""
        B, state = self.batch_size, self.state
        onecycle = self.exps[0].scheduler.name == "onecycle"
        for b in range(first_batch, self.n_batches):
            if self.stop.requested:
                self._interrupt(epoch, b)
                return False
            if onecycle:
                state.set_lr(optim.onecycle_lrs(self.members, epoch * self.n_batches + b,
                                                self.epochs * self.n_batches))
            assert state.perms is not None
            idx = state.perms[:, b * B:(b + 1) * B]  # (K, batch)
            # forward → loss (+ explicit penalty) → backward (gradients into pop.grad)
            logits, loss, objective, yb = self.step(idx, [m.drop_gen for m in self.members])
            if not math.isfinite(float(objective.sum())):  # one check (sync) per step
                keep = self._diverge(torch.isfinite(objective), epoch, b)
                if keep is None:
                    return False
                logits, loss, yb = logits[keep], loss[keep], yb[keep]
            if self.batch_lr is not None:  # the lr range test: this update's lr per member
                state.set_lr(self.batch_lr(epoch * self.n_batches + b, loss))
            if clip:
                state.pop.clip_grads(state.table.grad_clip)
            optim.step(state)  # every member with its own hyperparameters and lr
            state.sums.add(logits, loss, yb, regression=self.regression)
            for cb in self.callbacks:
                cb.on_batch_end(BatchProgress(epoch + 1, b + 1, self.n_batches))
        return True

    # ------------------------------------------------------------------ epoch end

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        state = self.state
        train_loss, train_acc = state.sums.means()
        val_loss, val = validate(state.pop, state.loss, self.data)
        val_acc = val.pop("val_accuracy", [math.nan] * len(val_loss))
        if self.regression:
            train_acc = [math.nan] * len(train_loss)
        stats = state.pop.layer_stats()
        lrs = state.lr.tolist()
        rows = []
        for k, m in enumerate(self.members):
            row = EpochMetrics(m.index, epoch + 1, train_loss[k], train_acc[k], val_loss[k],
                               val_acc[k], lrs[k], seconds,
                               records.layer_stats(stats[k]),
                               {name: v[k] for name, v in val.items()})
            m.history.append(row)
            rows.append(row)
        if self.pruner is not None:  # sees every member's row before any member is asked
            self.pruner.observe(rows)
        done = []
        for k, (m, row) in enumerate(zip(self.members, rows, strict=True)):
            if m.end_epoch(row, functools.partial(state.weights, k), self.pruner):
                done.append(k)
        for k, m in enumerate(self.members):
            if self.eager or k in done:
                self._save(m, k, epoch + 1, 0, with_last=self.eager or m.status is not None)
        for cb in self.callbacks:
            cb.on_epoch_end(rows)
        for k in done:
            self._finish(self.members[k])
        if done:
            state.compact([k for k in range(len(self.members)) if k not in done])

    # ------------------------------------------------------------------ stopping members

    def _diverge(self, finite: torch.Tensor, epoch: int, b: int) -> torch.Tensor | None:
        """Stop the members whose loss is not finite, before their bad update is applied."""
        bad = (~finite).nonzero().flatten().tolist()
        for k in bad:
            m = self.members[k]
            m.status = "diverged"
            m.reason = f"non-finite loss at epoch {epoch + 1}, step {b + 1}"
            self._finish(m)
        keep = [k for k in range(len(self.members)) if k not in bad]
        idx = self.state.compact(keep)  # the kept members keep their gradients
        return idx if keep else None

    def _interrupt(self, epoch: int, b: int) -> None:
        for k, m in enumerate(self.members):
            m.status = "interrupted"
            m.reason = f"stopped by {self.stop.reason} at epoch {epoch + 1}, batch {b + 1}"
            self._save(m, k, epoch, b, with_last=True, mid_epoch=True)
            self._finish(m)
        self.state.compact([])

    def _save(self, m: Member, k: int, epoch: int, batch: int, *, with_last: bool,
              mid_epoch: bool = False) -> None:
        """Write `best` (when it changed) and `last` (with the exact training state)."""
        if m.run_dir is None:
            return
        finish.write_progress(m)
        if m.best_dirty and m.best_state is not None:
            finish.save_model(m.run_dir, RunDir.BEST, m, self.data)
            m.best_dirty = False
        if with_last:
            train = self.state.state_dict(k, epoch, batch, mid_epoch=mid_epoch)
            finish.save_model(m.run_dir, RunDir.LAST, m, self.data, self.state.weights(k),
                              train)

    def _finish(self, m: Member) -> None:
        """Close a member: final checkpoints (sweeps), test metrics, summary.json."""
        if m.index in self.results:
            return
        result = finish.finish_member(m, self.data)
        self.results[m.index] = result
        for cb in self.callbacks:
            cb.on_member_end(m.index, result)

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
from fcnet_cli.engine.store import records as records
from fcnet_cli.engine.train.steps import AutogradStep, ExplicitStep, fast_path_reason
from fcnet_cli.engine.train.cpus import apply_threads
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.train.defaults import data_facts, resolve_defaults
from fcnet_cli.engine.train.ensemble import train_ensemble
from fcnet_cli.engine.train.graphs import BF16_REASON, GraphEpoch, epoch_mode, matmul_precision
from fcnet_cli.engine.train.losses import (
    MemberLoss,
    class_weight_table,
    classification_metrics,
    regression_metrics,
)
from fcnet_cli.engine.train.members import Member, new_member
from fcnet_cli.engine.train.memory import check_memory
from fcnet_cli.engine.train.optim import PopulationOptimizer, epoch_lr, onecycle_lr
from fcnet_cli.engine.train.population import Population, member_hparams
from fcnet_cli.engine.ranking import (
    average_precision,
    check_binary_monitors,
    roc_auc,
    watched_metrics,
)
from fcnet_cli.engine.train.tensorboard import loggers_for
from fcnet_cli.errors import RunError, UsageError
from fcnet_cli.events import (
    BatchProgress,
    Callback,
    EpochMetrics,
    Pruner,
    RunResult,
    RunStart,
    StopToken,
)

__all__ = ["BatchLr", "pick_device", "train", "train_population"]

BatchLr = Callable[[int, torch.Tensor], list[float]]  # (step, (K,) loss) -> lr per member
EVAL_BATCH = 8192


def pick_device(name: str) -> torch.device:
    """auto → cuda when available, else cpu. Asking for an absent device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("training.device is 'cuda' but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RunError("training.device is 'mps' but MPS is not available")
    return torch.device(name)


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
    returns the ensemble's result (`engine.ensemble.train_ensemble`).
    """
    if resume is not None and exp.model.ensemble == 1:
        records.check_resume_config(resume, exp)
    before = torch.get_num_threads()
    apply_threads(exp.training.threads)
    try:
        if exp.model.ensemble > 1:  # N members as one population, kept as one model
            # the default rule first: the ensemble's config.yaml and checkpoint record it
            data = data or load_data(exp.data, task=exp.task)
            if stop is not None:
                stop.mark_data_ready()
            exp = resolve_defaults(exp, data_facts(data))[0]
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
            run_dirs = records.prepare_run_dirs(exps, run_dirs, True, locks)
        loggers = loggers_for(exps)  # output.tensorboard: honoured here, whoever calls
        for logger in loggers:
            locks.callback(logger.close)
        engine = _Engine(exps, [*callbacks, *loggers], stop or StopToken(), pruner,
                         eager_checkpoints, data, batch_lr)
        return engine.run(run_dirs, resume, locks)


class _Engine:
    def __init__(self, exps: Sequence[Experiment], callbacks: Sequence[Callback],
                 stop: StopToken, pruner: Pruner | None, eager: bool,
                 data: DataSplits | None, batch_lr: BatchLr | None = None):
        self.exps, self.callbacks, self.stop, self.pruner, self.eager = exps, callbacks, stop, \
            pruner, eager
        self.batch_lr = batch_lr
        first = exps[0]
        if any(e.model.ensemble > 1 for e in exps):
            raise UsageError("model.ensemble > 1 trains through train() (engine.ensemble), "
                             "not as one member of a population")
        if len({layout_key(e) for e in exps}) > 1:
            raise ValueError("members of one population must share a layout (config.layout_key)")
        self.device = pick_device(first.training.device)
        self.data = (data or load_data(first.data, task=first.task)).to(self.device)
        stop.mark_data_ready()  # no run directory was written before this line
        # fields left out are resolved from the data (engine/train/defaults.py), before anything
        # reads them; the same rule for every member keeps their layout shared
        facts = data_facts(self.data)
        self.exps = exps = [resolve_defaults(e, facts)[0] for e in exps]
        first = exps[0]
        self.regression = self.data.task == "regression"
        check_binary_monitors(watched_metrics(exps), self.data.n_classes, self.data.task)
        self.epochs, self.batch_size = first.training.epochs, first.training.batch_size
        self.n_train = len(self.data.y_train)
        self.n_batches = math.ceil(self.n_train / self.batch_size)
        if first.model.batch_norm and self.n_train % self.batch_size == 1:
            self.n_batches -= 1  # batch norm cannot train on a last batch of one example
        self.results: dict[int, RunResult] = {}

    # ------------------------------------------------------------------ set-up

    def run(self, run_dirs: Sequence[Path] | None, resume: bool,
            locks: contextlib.ExitStack) -> list[RunResult]:
        d = self.data
        check_memory(self.exps, d.n_features, d.n_outputs, min(len(d.y_val), EVAL_BATCH),
                     self.device)  # refuse what cannot fit before allocating it
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
        self.graphs = None if mode is None else GraphEpoch(mode == "graph", precision == "bf16")
        self.pop = Population(self.exps, d.n_features, d.n_outputs, self.device,
                              autograd=reason is not None)
        self.members = [new_member(i, e, self.device) for i, e in enumerate(self.exps)]
        self.hp = member_hparams(self.exps, self.device)  # the (K,) table, built once
        self.loss = self._member_loss()
        self.opt = PopulationOptimizer(self.exps[0].optimizer.name, self.pop, self.hp)
        step = AutogradStep if reason is not None else ExplicitStep
        self.step = step(self.pop, self.hp, d.x_train, d.y_train, self.loss)
        for m in self.members:
            m.engine, m.engine_reason, m.products = self.step.name, reason, self.step.products
        dirs = [Path(p) for p in run_dirs or ()] if resume else records.prepare_run_dirs(
            self.exps, run_dirs, False, locks)
        for m, rd in zip(self.members, dirs, strict=True):
            m.run_dir = rd
        return self._run(dirs, resume)

    def _run(self, dirs: list[Path], resume: bool) -> list[RunResult]:
        d = self.data
        self.start_epoch, self.start_batch = 0, 0
        self.perms: torch.Tensor | None = None  # (K, N) this epoch's data order
        self.acc = (torch.zeros(self.pop.K, device=self.device),
                    torch.zeros(self.pop.K, device=self.device), 0)
        if resume:
            self._restore()
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

    def _restore(self) -> None:
        states = records.load_resume_states([m.run_dir for m in self.members if m.run_dir])
        if states is None:  # killed before its first checkpoint: start again from epoch 1
            return
        self.pop.load_state_dicts([s.weights for s in states])
        self.step.refresh(self.hp)
        self.opt.load_member_states([s.train["optimizer"] for s in states])
        for m, s in zip(self.members, states, strict=True):
            m.load_state(s.train, s.best_weights)
        t = states[0].train
        self.start_epoch, self.start_batch = int(t["epoch"]), int(t["batch"])
        if t["perm"] is not None:  # stopped inside an epoch: its data order and sums so far
            self.perms = torch.stack([s.train["perm"] for s in states]).to(self.device)
            self.acc = (torch.stack([s.train["loss_sum"] for s in states]).to(self.device),
                        torch.stack([s.train["correct"] for s in states]).to(self.device),
                        int(t["count"]))

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        clip = bool(torch.isfinite(self.hp["grad_clip"]).any())
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.perf_counter()
            resumed = epoch == self.start_epoch and self.perms is not None
            first_batch = self.start_batch if resumed else 0
            if not resumed:
                self.perms = torch.stack([torch.randperm(self.n_train, generator=m.perm_gen)
                                          for m in self.members]).to(self.device)  # (K, N)
                z = torch.zeros(self.pop.K, device=self.device)
                self.acc = (z, z.clone(), 0)
            self._set_epoch_lrs(epoch)
            if self.graphs is not None:  # CUDA: the same steps, no host read until the end
                if not self.graphs.run(self, epoch, first_batch):
                    return
            elif not self._batches(epoch, first_batch, clip):
                return
            self._end_epoch(epoch, time.perf_counter() - t0)
            if not self.members:
                return

    def _batches(self, epoch: int, first_batch: int, clip: bool) -> bool:
        """The epoch's steps from `first_batch`; False when the loop ends here."""
        B = self.batch_size
        for b in range(first_batch, self.n_batches):
            if self.stop.requested:
                self._interrupt(epoch, b)
                return False
            if self._onecycle:
                self._set_onecycle_lrs(epoch * self.n_batches + b)
            assert self.perms is not None
            idx = self.perms[:, b * B:(b + 1) * B]  # (K, batch)
            # forward → loss (+ explicit penalty) → backward (gradients into pop.grad)
            logits, loss, objective, yb = self.step(idx, [m.drop_gen for m in self.members])
            if not math.isfinite(float(objective.sum())):  # one check (sync) per step
                keep = self._diverge(torch.isfinite(objective), epoch, b)
                if keep is None:
                    return False
                logits, loss, yb = logits[keep], loss[keep], yb[keep]
            if self.batch_lr is not None:  # the lr range test: this update's lr per member
                self._write_lrs(self.batch_lr(epoch * self.n_batches + b, loss))
            if clip:
                self.pop.clip_grads(self.hp["grad_clip"])
            self.opt.step()  # every member with its own lr from the table
            with torch.no_grad():
                ls, corr, cnt = self.acc
                if not self.regression:
                    corr = corr + (logits.argmax(-1) == yb).sum(1)
                self.acc = (ls + loss * yb.shape[1], corr, cnt + yb.shape[1])
            for cb in self.callbacks:
                cb.on_batch_end(BatchProgress(epoch + 1, b + 1, self.n_batches))
        return True

    # ------------------------------------------------------------------ learning rates

    @property
    def _onecycle(self) -> bool:
        return self.exps[0].scheduler.name == "onecycle"

    def _set_epoch_lrs(self, epoch: int) -> None:
        """Write this epoch's lr of every member into the table's lr column."""
        lrs = []
        for m in self.members:
            s, base = m.exp.scheduler, m.exp.optimizer.lr
            lr = epoch_lr(s, base, epoch, self.epochs)
            if m.plateau is not None and epoch >= s.warmup_epochs:
                lr = m.plateau.lr
            lrs.append(lr)
        self._write_lrs(lrs)

    def _set_onecycle_lrs(self, step: int) -> None:
        total = self.epochs * self.n_batches
        self._write_lrs([onecycle_lr(step, total, m.exp.scheduler.max_lr or m.exp.optimizer.lr,
                                     m.exp.scheduler.pct_start) for m in self.members])

    def _write_lrs(self, lrs: list[float]) -> None:
        col = self.hp["lr"]  # in place: the optimizer holds views of this column
        if len(lrs) == 1:
            col.fill_(lrs[0])
        else:
            col.copy_(torch.tensor(lrs, dtype=col.dtype))

    # ------------------------------------------------------------------ epoch end

    def _member_loss(self) -> MemberLoss:
        """The population's loss, its hyperparameters per member ((K,) or (K, C) tensors)."""
        first, hp = self.exps[0], self.hp
        smoothing = hp["label_smoothing"] if bool((hp["label_smoothing"] > 0).any()) else None
        weights = None if self.regression else class_weight_table(
            self.exps, self.data.y_train, self.data.n_classes, self.device)
        delta = torch.tensor([e.loss.huber_delta for e in self.exps], dtype=torch.float32,
                             device=self.device)
        return MemberLoss(first.loss_name, smoothing, weights, delta)

    @torch.no_grad()
    def _evaluate_val(self) -> tuple[list[float], dict[str, list[float]]]:
        """Validation loss per member and the metrics (`config.Monitor`) per member."""
        x, y = self.data.x_val, self.data.y_val
        K, C = self.pop.K, self.pop.n_classes
        loss_sum = torch.zeros(K, device=self.device)
        # classification: confusion (K, C, C); regression: Σ squared / absolute errors (K, T)
        conf = torch.zeros(K * C * C, dtype=torch.long, device=self.device)
        sse = torch.zeros(K, C, dtype=torch.float64, device=self.device)
        sae = torch.zeros_like(sse)
        member = torch.arange(K, device=self.device).unsqueeze(1)  # (K, 1)
        margins = []  # binary: logit[1] − logit[0] per batch, (K, B) each, for the AUCs
        binary = not self.regression and C == 2
        for s in range(0, len(y), EVAL_BATCH):
            xb, yb = x[s:s + EVAL_BATCH], y[s:s + EVAL_BATCH]
            out = self.pop.forward(xb.expand(K, -1, -1), False)
            yk = yb.expand(K, *yb.shape)
            loss_sum += self.loss(out, yk) * len(yb)
            if self.regression:
                diff = (out - yk).double()
                sse += (diff * diff).sum(1)
                sae += diff.abs().sum(1)
            else:
                conf += torch.bincount(((member * C + yk) * C + out.argmax(-1)).flatten(),
                                       minlength=K * C * C)
                if binary:
                    margins.append((out[..., 1] - out[..., 0]).float())
        n = max(len(y), 1)
        if self.regression:
            yd = y.double()
            sst = ((yd - yd.mean(0)) ** 2).sum(0)  # (T,)
            metrics = regression_metrics(sse, sae, sst, len(y), self.data.preprocessing.target.std)
        else:
            metrics = classification_metrics(conf.view(K, C, C))
            if binary and margins:
                scores, positive = torch.cat(margins, 1), y == 1  # (K, N), (N,)
                metrics["val_roc_auc"] = roc_auc(scores, positive)
                metrics["val_pr_auc"] = average_precision(scores, positive)
        return (loss_sum / n).tolist(), {k: v.tolist() for k, v in metrics.items()}

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        ls, corr, cnt = self.acc
        train_loss, train_acc = (ls / cnt).tolist(), (corr / cnt).tolist()
        val_loss, val = self._evaluate_val()
        val_acc = val.pop("val_accuracy", [math.nan] * len(val_loss))
        if self.regression:
            train_acc = [math.nan] * len(train_loss)
        stats = self.pop.layer_stats()
        lrs = self.hp["lr"].tolist()
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
            if m.end_epoch(row, functools.partial(self.pop.state_dict, k), self.pruner):
                done.append(k)
        for k, m in enumerate(self.members):
            if self.eager or k in done:
                self._save(m, k, epoch + 1, 0, with_last=self.eager or m.status is not None)
        for cb in self.callbacks:
            cb.on_epoch_end(rows)
        for k in done:
            self._finish(self.members[k])
        if done:
            self._keep([k for k in range(len(self.members)) if k not in done])

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
        if not keep:
            self.members = []
            return None
        return self._keep(keep)  # the kept members keep their gradients

    def _keep(self, keep: list[int]) -> torch.Tensor:
        """Compact every per-member structure to the members `keep`."""
        keep_t = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.members = [self.members[k] for k in keep]
        self.pop.compact(keep_t)
        self.hp = {n: t[keep_t] for n, t in self.hp.items()}
        self.loss = self.loss.compact(keep_t)
        self.opt.compact(keep_t, self.hp)
        self.step.loss = self.loss
        self.step.refresh(self.hp)
        if self.perms is not None:
            self.perms = self.perms[keep_t]
        ls, corr, cnt = self.acc
        self.acc = (ls[keep_t], corr[keep_t], cnt)
        return keep_t

    def _interrupt(self, epoch: int, b: int) -> None:
        for k, m in enumerate(self.members):
            m.status = "interrupted"
            m.reason = f"stopped by {self.stop.reason} at epoch {epoch + 1}, batch {b + 1}"
            self._save(m, k, epoch, b, with_last=True, mid_epoch=True)
            self._finish(m)
        self.members = []

    def _save(self, m: Member, k: int, epoch: int, batch: int, with_last: bool,
              mid_epoch: bool = False) -> None:
        """Write `best` (when it changed) and `last` (with the exact training state)."""
        if m.run_dir is None:
            return
        records.write_progress(m)
        if m.best_dirty and m.best_state is not None:
            records.save_model(m.run_dir, "best", m, self.data)
            m.best_dirty = False
        if with_last:
            ls, corr, cnt = self.acc
            perm = self.perms[k] if mid_epoch and self.perms is not None else None
            state = m.train_state(epoch, batch, self.opt.member_state(k), perm,
                                  ls[k], corr[k], cnt)
            records.save_model(m.run_dir, "last", m, self.data, self.pop.state_dict(k), state)

    def _finish(self, m: Member) -> None:
        """Close a member: final checkpoints (sweeps), test metrics, summary.json."""
        if m.index in self.results:
            return
        result = records.finish_member(m, self.data)
        self.results[m.index] = result
        for cb in self.callbacks:
            cb.on_member_end(m.index, result)

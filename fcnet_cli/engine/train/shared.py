"""`model.ensemble_kind: shared`: K members sharing each layer's weight matrix
(`engine.batchensemble.BatchEnsemble`), trained as one network with autograd.

    runs/<name>/<run-id>/
      config.yaml          the experiment as it ran (model.ensemble: K, ensemble_kind: shared)
      metrics.csv          one row per epoch: the members' mean training loss, the ensemble's
                           validation metrics (its mean prediction)
      summary.json         a run's, with "ensemble": {"members": K, "kind": "shared"} and the
                           members' test metrics (mean ± std) under test.members
      checkpoints/best/    ONE BatchEnsemble: one weight per layer, each member's r, s, bias
      checkpoints/last/    the same at the last epoch (weights only: no resume)

The shared weights cannot live in the population engine's per-member (K, P) buffers, so the
module trains itself, with torch.optim's implementation of the experiment's optimizer (the
population engine's oracle). One step, in order:

    forward    each member's output (K, batch, C) of the batch, dropout from the run's generator
    loss       mean over members of each member's loss (label smoothing, class weights)
               + the L1/L2 penalty on the shared weights (and on the biases with include_bias,
               averaged over members)
    update     zero_grad → backward → clip (the global norm) → step
    schedule   the lr of the epoch (engine/train/optim.py, plateau after warm-up), or of the
               batch (onecycle)

Weight decay applies to the shared weights (and the biases with include_bias), never to the
scalings r and s. The batches come in the order a single run with the same seed draws them;
initialization, sign draws and dropout come from training.seed, so a run is reproducible.
Early stopping and the best checkpoint follow the ensemble's validation metric. Ctrl-C stops
after the batch and saves; `--resume` is refused (train again).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.batchensemble import BatchEnsemble, BatchLinear, mean_of_members
from fcnet_cli.engine.data.embedded import embed_splits
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.evaluate import evaluate_split, member_spread
from fcnet_cli.engine.model import build_model, member_modules
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.store import records
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.train import finish, optim
from fcnet_cli.engine.train.defaults import data_facts, resolve_defaults
from fcnet_cli.engine.train.device import pick_device
from fcnet_cli.engine.train.graphs import matmul_precision
from fcnet_cli.engine.train.kernels import penalty
from fcnet_cli.engine.train.losses import validate
from fcnet_cli.engine.train.members import Member, new_member
from fcnet_cli.engine.train.sharedstep import make_optimizer, shared_loss, shared_step
from fcnet_cli.engine.train.state import MemberTable
from fcnet_cli.engine.train.tensorboard import loggers_for
from fcnet_cli.errors import UsageError
from fcnet_cli.events import (
    SPARSE_BELOW,
    BatchProgress,
    Callback,
    EpochMetrics,
    RunResult,
    RunStart,
    StopToken,
)

__all__ = ["ENGINE_REASON", "train_shared"]

ENGINE_REASON = "a shared ensemble (model.ensemble_kind: shared) trains with autograd"


def train_shared(exp: Experiment, fit: Callable[..., Any] | None = None, *,
                 callbacks: Sequence[Callback] = (), stop: StopToken | None = None,
                 resume: Path | None = None, data: DataSplits | None = None,
                 run_dir: Path | None = None) -> RunResult:
    """Train `exp` (``model.ensemble_kind: shared``) into one run directory; the arguments are
    `train_ensemble`'s (`fit`, the population trainer, is not used: see the module doc).

    Raises:
        UsageError: `resume` (a shared ensemble is not resumable).
    """
    if resume is not None:
        raise UsageError(f"{resume}: a shared ensemble (model.ensemble_kind: shared) cannot be "
                         "resumed; train it again from its config: fcnet train "
                         f"{RunDir(resume).config}")
    with contextlib.ExitStack() as locks:
        loggers = loggers_for([exp])  # output.tensorboard
        for logger in loggers:
            locks.callback(logger.close)
        trainer = _SharedTrainer(exp, callbacks, loggers, stop or StopToken(), data)
        dirs = records.prepare_run_dirs([trainer.exp], None if run_dir is None
                                        else [Path(run_dir)], resume=False, locks=locks)
        locks.enter_context(matmul_precision(trainer.device, exp.training.precision))
        return trainer.run(dirs[0])


class _MeanOutput:
    """The ensemble's mean prediction as `validate`'s one member: x (1, B, F) -> (1, B, C)."""

    K = 1

    def __init__(self, net: BatchEnsemble, n_outputs: int, device: torch.device):
        self.net, self.n_classes, self.device = net, n_outputs, device

    def forward(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        return self.net.eval()(x[0]).unsqueeze(0)


class _SharedTrainer:
    """One shared ensemble's training: its module, optimizer, member record and epochs."""

    def __init__(self, exp: Experiment, callbacks: Sequence[Callback],
                 loggers: Sequence[Callback], stop: StopToken, data: DataSplits | None):
        self.stop = stop
        self.callbacks = [*callbacks, *loggers]
        self.device = pick_device(exp.training.device)
        self.data = embed_splits(data or load_data(exp.data, task=exp.task), exp.model,
                                 exp.data.split_seed).to(self.device)
        stop.mark_data_ready()
        self.exp = exp = resolve_defaults(exp, data_facts(self.data))[0]
        d = self.data  # its monitors, memory and class weights: loop.preflight, before
        torch.manual_seed(exp.training.seed)  # W and biases as nn.Linear's, then the signs
        net = build_model(exp.model, d.n_features, d.n_outputs, d.task).to(self.device)
        assert isinstance(net, BatchEnsemble)
        self.net, self.K = net, net.k
        self.opt = make_optimizer(exp, net)
        self.loss_k, self.loss_1 = shared_loss(exp, self.K, d), shared_loss(exp, 1, d)
        self.table = MemberTable.of([exp], self.device)
        self.member: Member = new_member(0, exp, self.device)
        self.member.engine, self.member.engine_reason = "autograd", ENGINE_REASON
        self.batch_size = exp.training.batch_size
        self.n_train = len(d.y_train)
        self.n_batches = math.ceil(self.n_train / self.batch_size)
        self.result: RunResult | None = None

    # ------------------------------------------------------------------ the loop

    def run(self, run_dir: Path) -> RunResult:
        self.member.run_dir = run_dir
        d, exp = self.data, self.exp
        start = RunStart(
            names=[f"shared ×{self.K}"], run_dirs=[str(run_dir)], epochs=exp.training.epochs,
            batches_per_epoch=self.n_batches, start_epoch=0, device=str(self.device),
            n_train=self.n_train, n_val=len(d.y_val), n_test=len(d.y_test),
            n_features=d.n_features, n_classes=d.n_outputs, task=d.task,
            notices=list(d.notices), monitor=exp.training.early_stopping.monitor)
        for cb in self.callbacks:  # one member, named by its kind
            cb.on_run_start(start)
        try:
            self._loop()
        except BaseException as err:  # record what is known, let the error through
            m = self.member
            if m.status is None:
                why = " ".join(str(err).split()) or type(err).__name__
                m.status, m.reason = "failed", f"stopped by an error: {why}"
                with contextlib.suppress(Exception):
                    self._finish()
            raise
        assert self.result is not None
        return self.result

    def _loop(self) -> None:
        m, epochs = self.member, self.exp.training.epochs
        for epoch in range(epochs):
            t0 = time.perf_counter()
            perm = torch.randperm(self.n_train, generator=m.perm_gen).to(self.device)
            self._set_lr(optim.epoch_lrs([m], epoch, epochs)[0])
            sums = self._batches(epoch, perm)
            if sums is None:
                return
            if self._end_epoch(epoch, sums, time.perf_counter() - t0):
                return

    def _set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def _batches(self, epoch: int, perm: torch.Tensor) -> tuple[float, float, int] | None:
        """The epoch's steps; (Σ loss·batch, Σ correct, examples), or None when it ends here."""
        B, d, s = self.batch_size, self.data, self.exp.scheduler
        loss_sum = correct = torch.zeros((), device=self.device)  # summed on the device
        count = 0
        for b in range(self.n_batches):
            if self.stop.requested:
                self._interrupt(epoch, b)
                return None
            if s.name == "onecycle":
                self._set_lr(optim.onecycle_lrs([self.member], epoch * self.n_batches + b,
                                                self.exp.training.epochs * self.n_batches)[0])
            idx = perm[b * B:(b + 1) * B]
            xb, yb = d.x_train[idx], d.y_train[idx]
            out = self.step(xb, yb)
            if out is None:
                self._diverge(epoch, b)
                return None
            z, loss = out
            loss_sum = loss_sum + loss * len(idx)
            count += len(idx)
            if d.task != "regression":
                pred = mean_of_members(z, regression=False).argmax(-1)
                correct = correct + (pred == yb).sum()
            for cb in self.callbacks:
                cb.on_batch_end(BatchProgress(epoch + 1, b + 1, self.n_batches))
        return float(loss_sum), float(correct), count

    def step(self, xb: torch.Tensor, yb: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`shared_step` with this run's settings."""
        bf16 = self.exp.training.precision == "bf16" and self.device.type == "cuda"
        return shared_step(self.net, self.opt, self.loss_k, xb, yb, self.member.drop_gen,
                           extra=self._penalty, clip=self.exp.training.grad_clip, bf16=bf16)

    def _penalty(self) -> torch.Tensor:
        """λ1·Σ|W| + λ2·ΣW² over the shared weights, plus the members' mean bias penalty
        with include_bias (each member's objective carries its own bias)."""
        t = self.table
        use = (t.on("l1"), t.on("l2"))
        if not any(use):
            return torch.zeros((), device=self.device)
        layers = [layer for layer in self.net.layers if isinstance(layer, BatchLinear)]
        total = penalty([w.weight.unsqueeze(0) for w in layers], t.l1, t.l2, use)[0]
        if self.exp.regularization.include_bias:
            total = total + penalty([w.bias.unsqueeze(0) for w in layers], t.l1, t.l2,
                                    use)[0] / self.K
        return total

    # ------------------------------------------------------------------ epoch end

    def _end_epoch(self, epoch: int, sums: tuple[float, float, int], seconds: float) -> bool:
        """Validate, record, save; True when the run ends after this epoch."""
        m, d = self.member, self.data
        loss_sum, correct, count = sums
        val_loss, val = validate(_MeanOutput(self.net, d.n_outputs, self.device),
                                 self.loss_1, d)
        val_acc = val.pop("val_accuracy", [math.nan])[0]
        train_acc = math.nan if d.task == "regression" else correct / max(count, 1)
        row = EpochMetrics(0, epoch + 1, loss_sum / max(count, 1), train_acc, val_loss[0],
                           val_acc, self.opt.param_groups[0]["lr"], seconds,
                           records.layer_stats(self._layer_stats()),
                           {name: v[0] for name, v in val.items()})
        m.history.append(row)
        done = m.end_epoch(row, self._weights, None)
        self._save()
        for cb in self.callbacks:
            cb.on_epoch_end([row])
        if done:
            self._finish()
        return done

    @torch.no_grad()
    def _layer_stats(self) -> list[tuple[str, float, float, float]]:
        """Per layer, of its shared weight: (layer, L2 norm, L1 norm, fraction |w| < ...)."""
        out = []
        for j, layer in enumerate(self.net.layers):
            assert isinstance(layer, BatchLinear)
            w = layer.weight.detach().flatten()
            out.append((str(j), float(w.norm()), float(w.abs().sum()),
                        float((w.abs() < SPARSE_BELOW).float().mean())))
        return out

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    # ------------------------------------------------------------------ records

    def _meta(self, epoch: int | None) -> dict[str, Any]:
        return {**finish.checkpoint_meta(self.member, self.data, epoch), "ensemble": self.K,
                "ensemble_kind": "shared"}

    def _save(self) -> None:
        """metrics.csv and summary.json so far, `best` when it changed, `last`."""
        m = self.member
        assert m.run_dir is not None
        finish.write_progress(m)
        if m.best_dirty and m.best_state is not None:
            ck.save_checkpoint(m.run_dir, RunDir.BEST, m.best_state, self._meta(m.best_epoch))
            m.best_dirty = False
        last = m.history[-1].epoch if m.history else None
        ck.save_checkpoint(m.run_dir, RunDir.LAST, self._weights(), self._meta(last))

    def _interrupt(self, epoch: int, b: int) -> None:
        m = self.member
        m.status = "interrupted"
        m.reason = f"stopped by {self.stop.reason} at epoch {epoch + 1}, batch {b + 1}"
        self._save()
        self._finish()

    def _diverge(self, epoch: int, b: int) -> None:
        m = self.member
        m.status, m.reason = "diverged", f"non-finite loss at epoch {epoch + 1}, step {b + 1}"
        self._save()
        self._finish()

    def _finish(self) -> None:
        """Test metrics of the best state (the members' too), summary.json, on_member_end."""
        m, d = self.member, self.data
        test, notices = None, list(d.notices)
        if m.best_state is not None:
            best = build_model(self.exp.model, d.n_features, d.n_outputs, d.task)
            best.load_state_dict(m.best_state)
            best = best.to(self.device).eval()
            test, notices = finish.best_test(best, m, d)
            if test is not None:
                test.members = member_spread([evaluate_split(k, self.exp, d, "test")
                                              for k in member_modules(best)])
        result = RunResult(
            name=self.exp.name, run_dir=str(m.run_dir), status=m.status or "interrupted",
            history=list(m.history), best_epoch=m.best_epoch, monitor=m.monitor, test=test,
            reason=m.reason, seconds=m.seconds, notices=notices, engine="autograd",
            engine_reason=ENGINE_REASON, products=["aten"] * len(self.net.layers),
            precision=self.exp.training.precision)
        assert m.run_dir is not None
        records.write_metrics(m.run_dir, m.history)
        summary = records.summary(result)
        summary["ensemble"] = {"members": self.K, "kind": "shared"}
        ck.atomic_write_text(RunDir(m.run_dir).summary, json.dumps(summary, indent=2))
        self.result = result
        for cb in self.callbacks:
            cb.on_member_end(0, result)

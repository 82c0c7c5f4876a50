"""The CUDA epoch: no host synchronization inside an epoch, each step one CUDA graph replay.

On a CUDA device, for the layouts the explicit engine covers, the training loop hands each
epoch to `GraphEpoch`. One whole step — the batch gathered by `index_select` from the
device-resident data and the epoch's permutation, forward, loss (+ penalty), backward,
clipping, the optimizer update, the metric sums — is captured once as a CUDA graph and
replayed for every batch: one launch per step, and the host never waits for the device
inside an epoch. Everything the step reads is a device tensor updated in place: the batch
number (the graph advances it itself), the learning rates (written once per epoch, or a
per-batch table for one-cycle), Adam's step count. The last, partial batch has a graph of
its own. The first step of each kind runs eagerly (it allocates the step's buffers and the
optimizer state); the next one is captured.

Divergence without a host read: the step computes `ok = isfinite(objective) & alive` on the
device. A member whose objective is not finite gets a zero gradient and a zero learning rate
from that step on, so its bad update is never applied and its weights stay those it had
before that step (it is frozen); `good` counts the steps it survived this epoch. The host
reads `alive` and `good` once per epoch (and before an interrupt is saved), finishes the
frozen members as
"diverged" with their step — what the CPU loop's per-step check reports — and compacts the
population. A finished member writes no `last` checkpoint, so its frozen optimizer state is
never read.

Dropout stays per member: each member's CUDA generator is registered with every graph
(`CUDAGraph.register_generator_state`), so a replay draws what the eager step would.

`training.precision`: tf32 lets float32 products use the TF32 tensor cores while the run
trains; bf16 autocasts the forward to bfloat16 (weights, gradients and optimizer state stay
float32) through the autograd step, captured the same way.

`FCNET_CUDA_GRAPHS=0` keeps the eager per-step loop on CUDA; `FCNET_CUDA_GRAPHS=eager` runs
this epoch without capturing it, on any device (the tests hold it against the eager loop).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.train import optim
from fcnet_cli.engine.train.state import EpochSums
from fcnet_cli.engine.train.steps import autograd_step
from fcnet_cli.errors import UsageError
from fcnet_cli.events import BatchProgress

__all__ = ["BF16_REASON", "GraphEpoch", "epoch_mode", "matmul_precision"]

BF16_REASON = "training.precision bf16 autocasts the forward through autograd"
StepOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def epoch_mode(exps: Sequence[Experiment], device: torch.device,
               reason: str | None) -> str | None:
    """"graph" (capture), "eager" (the same epoch uncaptured) or None (the per-step loop).

    `reason` is why the layout needs autograd (steps.fast_path_reason). Raises UsageError
    for a precision the run cannot honour.
    """
    precision = exps[0].training.precision
    env = os.environ.get("FCNET_CUDA_GRAPHS", "1")
    if precision != "fp32" and device.type != "cuda":
        raise UsageError(f"training.precision {precision} needs a CUDA device (this run "
                         f"trains on {device.type}); use fp32")
    mode = None if env == "0" else "eager" if env == "eager" else (
        "graph" if device.type == "cuda" else None)
    if precision == "bf16" and (mode is None or reason is not None):
        why = reason or "FCNET_CUDA_GRAPHS=0"
        raise UsageError(f"training.precision bf16 needs the CUDA epoch, which this run "
                         f"cannot use ({why}); use fp32 or tf32")
    return mode if reason is None else None


@contextlib.contextmanager
def matmul_precision(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 products in IEEE float32 ("fp32", "bf16") or on TF32 tensor cores ("tf32") while
    the run trains on CUDA; the previous setting is restored afterwards."""
    if device.type != "cuda":
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class GraphEpoch:
    """One epoch of the population engine (`loop._Trainer`, here `e`) without host reads."""

    def __init__(self, *, capture: bool, bf16: bool):
        self.capture, self.bf16 = capture, bf16
        self.K = -1  # members the static buffers were made for
        self.key: tuple[Any, ...] = ()
        self.graphs: dict[bool, torch.cuda.CUDAGraph] = {}  # last (partial) batch? -> graph
        self.warm: set[bool] = set()

    # ------------------------------------------------------------------ static buffers

    def _buffers(self, e: Any) -> None:
        """The tensors every captured step reads and writes, made again when K changes."""
        K, dev = e.state.K, e.device
        if K == self.K:
            return
        self.K = K
        self.perm = torch.empty(K, e.n_train, dtype=torch.long, device=dev)  # (K, N)
        self.ls = torch.zeros(K, device=dev)  # Σ loss · batch this epoch
        self.corr = torch.zeros(K, device=dev)  # Σ correct predictions
        self.alive = torch.ones(K, dtype=torch.bool, device=dev)  # finite so far
        self.good = torch.zeros(K, dtype=torch.long, device=dev)  # steps survived this epoch
        self.b = torch.zeros(1, dtype=torch.long, device=dev)  # the batch number
        self.t = torch.zeros(1, dtype=torch.float64, device=dev)  # optimizer step count
        B, full = e.batch_size, e.n_train // e.batch_size
        self.batches = self.perm[:, :full * B].view(K, full, B)  # the full batches' columns
        self.zero = torch.zeros((), device=dev)
        self.adam = e.state.optimizer in ("adam", "adamw")  # the only update that reads t
        self.lr = torch.empty(K, 1, device=dev)  # lr · alive, what the update applies
        self.lr_table = (torch.empty(e.n_batches, K, device=dev)
                         if e.exps[0].scheduler.name == "onecycle" else None)
        self.clip = bool(torch.isfinite(e.state.table.grad_clip).any())

    def _check_graphs(self, e: Any) -> None:
        """Drop the graphs when a tensor they captured was replaced (compaction, resume,
        the optimizer state made by the first step)."""
        st = e.state
        key = (st.pop.flat, st.pop.grad, st.lr, st.loss, *st.slots.values())
        if len(key) != len(self.key) or any(a is not b for a, b in zip(key, self.key,
                                                                       strict=True)):
            self.key = key
            self.graphs.clear()
            self.warm.clear()

    # ------------------------------------------------------------------ the epoch

    def run(self, e: Any, epoch: int, first: int) -> bool:
        """Train epoch `epoch` from batch `first`; False when the loop ends here (an
        interrupt, or no member left)."""
        self._buffers(e)
        B, state = e.batch_size, e.state
        cnt = state.sums.count
        self.perm.copy_(state.perms)
        self.ls.copy_(state.sums.loss)
        self.corr.copy_(state.sums.correct)
        self.alive.fill_(True)
        self.good.zero_()
        self.first = first
        self.b.fill_(first)
        self.t.fill_(state.step_count)
        if self.lr_table is not None:
            self.lr_table.copy_(self._onecycle_table(e, epoch))
        for b in range(first, e.n_batches):
            if e.stop.requested:
                state.sums = EpochSums(self.ls.clone(), self.corr.clone(), cnt)
                if self._settle(e, epoch):
                    e._interrupt(epoch, b)
                return False
            self._step(e, last=(b + 1) * B > e.n_train)
            cnt += min(B, e.n_train - b * B)
            state.step_count += 1
            for cb in e.callbacks:
                cb.on_batch_end(BatchProgress(epoch + 1, b + 1, e.n_batches))
        state.sums = EpochSums(self.ls.clone(), self.corr.clone(), cnt)
        return self._settle(e, epoch)

    def _onecycle_table(self, e: Any, epoch: int) -> torch.Tensor:
        """(batches, K) one-cycle lrs of this epoch, the values the per-step loop writes."""
        nb = e.n_batches
        total = e.epochs * nb
        rows = [optim.onecycle_lrs(e.members, epoch * nb + b, total) for b in range(nb)]
        return torch.tensor(rows, dtype=torch.float32)

    def _settle(self, e: Any, epoch: int) -> bool:
        """The epoch's one read of the flags: finish the members that diverged, compact."""
        alive, good = self.alive.tolist(), self.good.tolist()
        for k, ok in enumerate(alive):
            if not ok:  # its first non-finite step: the one after those it survived
                m = e.members[k]
                m.status = "diverged"
                step = self.first + good[k] + 1
                m.reason = f"non-finite loss at epoch {epoch + 1}, step {step}"
                e._finish(m)
        keep = [k for k, ok in enumerate(alive) if ok]
        if len(keep) < len(alive):
            e.state.compact(keep)
        return bool(keep)

    # ------------------------------------------------------------------ one step

    def _step(self, e: Any, *, last: bool) -> None:
        """Replay the step's graph; capture it first (after one eager step of its kind)."""
        self._check_graphs(e)
        if not self.capture:
            self._body(e, last=last)
            return
        graph = self.graphs.get(last)
        if graph is None and last not in self.warm:
            # a real step, eagerly on a side stream: buffers, optimizer state, library handles
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._body(e, last=last)
            torch.cuda.current_stream().wait_stream(side)
            self.warm.add(last)
            return
        if graph is None:
            graph = torch.cuda.CUDAGraph()
            if e.state.switches.dropout is not None:
                for m in e.members:
                    graph.register_generator_state(m.drop_gen)
            with torch.cuda.graph(graph):
                self._body(e, last=last)
            self.graphs[last] = graph
        graph.replay()

    def _body(self, e: Any, *, last: bool) -> None:
        """One training step with every value on the device (what a graph captures)."""
        B = e.batch_size
        if last:  # the partial batch: a fixed slice of the permutation
            idx = self.perm[:, (e.n_batches - 1) * B:]
        else:  # (K, B): columns b·B … b·B + B − 1, b read on the device
            idx = self.batches.index_select(1, self.b).view(self.K, B)
        state = e.state
        if self.lr_table is not None:
            state.lr.copy_(self.lr_table.index_select(0, self.b).view(-1))
        gens = [m.drop_gen for m in e.members]
        # forward → loss (+ explicit penalty) → backward (gradients into pop.grad)
        logits, loss, objective, yb = (self._autocast_step(e, idx, gens) if self.bf16
                                       else e.step(idx, gens))
        with torch.no_grad():
            alive, g = self.alive, state.pop.grad
            alive.logical_and_(torch.isfinite(objective))  # (K,)
            self.good.add_(alive)
            torch.where(alive.view(-1, 1), g, self.zero, out=g)  # the bad update is never applied
            if self.clip:
                state.pop.clip_grads(state.table.grad_clip)
            torch.mul(state.lr.view(-1, 1), alive.view(-1, 1), out=self.lr)
            if self.adam:
                self.t.add_(1)
            optim.update(state, self.lr, self.t)  # each member its own lr (0 once diverged)
            self.ls.add_(loss * yb.shape[1])
            self.corr.add_((logits.argmax(-1) == yb).sum(1))
            self.b.add_(1)

    @staticmethod
    def _autocast_step(e: Any, idx: torch.Tensor, gens: Sequence[torch.Generator]) -> StepOut:
        """The autograd step with the forward in bfloat16 and no host read (bf16)."""
        step, flat = e.step, idx.reshape(-1)
        xb = step.x.index_select(0, flat).view(*idx.shape, -1)  # (K, B, F)
        yb = step.y.index_select(0, flat).view(*idx.shape)  # (K, B)
        return autograd_step(e.state, xb, yb, gens, bf16=True)

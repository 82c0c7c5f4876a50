"""One training step's forward and backward pass: written out by hand, or by autograd.

`fast_path_reason` is the one place that decides which runs. The explicit step computes the
same gradients autograd would (tests/test_backprop.py holds each parameter's gradient against
autograd's) with matrix products into buffers allocated once per batch size:

    forward   z_l = h_{l-1} W_lᵀ + b_l     h_l = dropout(act(z_l))      logits = z_L
    loss      CE_k = mean_b [ -(1-ε) log p[y] - ε mean_c log p ]          p = softmax(logits)
    backward  dz_L = (p - (1-ε) onehot(y) - ε/C) / B
              dW_l = dz_lᵀ h_{l-1}     db_l = Σ_b dz_l        (W_l is (out, in), nn.Linear's)
              dz_{l-1} = act'(z_{l-1}) ⊙ mask_{l-1} ⊙ (dz_l W_l)
    penalty   + λ1 sign(w) + 2 λ2 w   on the weights (and biases when include_bias)

K = 1 uses `addmm`/`mm` on 2-D views; K > 1 uses `baddbmm`/`bmm` over the member axis.
A layer with at least `ONEDNN_MIN` weights on a CPU whose torch build has oneDNN takes its
three products (z, dW, dh) from oneDNN's fp32 matmul instead, member by member: ATen's fp32
products go to MKL, which on AMD CPUs runs its AVX2 kernel (measured on an AVX-512 AMD EPYC:
about half of oneDNN's rate; `benchmarks/ab_epoch.py` prints both 2048² rates).
Both are fp32 products with fp32 accumulation; they differ in summation order only.
Gradients land in the population's (K, P) gradient buffer, where the optimizer reads them.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.train.kernels import (
    ACTIVATIONS,
    Activation,
    affine,
    cross_entropy_grad_,
    dropout_mask_,
    penalty,
    penalty_grad_,
    smoothed_nll,
)
from fcnet_cli.engine.train.population import Population
from fcnet_cli.engine.train.state import PopulationState

__all__ = ["ONEDNN_MIN", "AutogradStep", "ExplicitStep", "Step", "autograd_step",
           "fast_path_reason", "onednn_linear"]

# (logits (K, B, C), loss (K,), objective = loss + penalty (K,), targets (K, B))
StepOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
aten = torch.ops.aten
# weights (out × in) from which a layer's products go to oneDNN: below it the call's fixed
# cost outweighs the faster kernel (measured: 256×128 gains, 128×10 loses)
ONEDNN_MIN = 16384
Linear = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@functools.cache
def onednn_linear() -> Linear | None:
    """oneDNN's fp32 `x @ wᵀ + b` (w is (out, in), any strides), or None where this torch
    build lacks it, it disagrees with addmm on a probe, or FCNET_ONEDNN=0 turns it off."""
    if os.environ.get("FCNET_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return None
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None:
        return None

    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return op(x, w, b, "none", [], "")

    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=g) for s in ((5, 7), (3, 7), (3,)))
    try:
        ok = torch.allclose(linear(x, w, b), torch.addmm(b, x, w.t()), rtol=1e-5, atol=1e-5) \
            and torch.allclose(linear(x.t(), x.t(), None), x.t() @ x, rtol=1e-5, atol=1e-5)
    except RuntimeError:
        return None
    return linear if ok else None


def fast_path_reason(exps: Sequence[Experiment]) -> str | None:
    """Why a population must train with autograd; None when the explicit backward covers it.

    The single decision point: a feature the explicit backward does not implement adds its
    reason here, and its runs fall back to autograd (summary.json records which ran and why).
    """
    if any(e.training.engine == "autograd" for e in exps):
        return "training.engine is autograd"
    if exps[0].model.batch_norm:
        # batch norm couples the examples of a batch through its mean and variance, and its
        # running statistics must follow nn.BatchNorm1d bit for bit; autograd keeps that exact
        # and its overhead is small next to batch norm's own reductions
        return "batch norm is trained with autograd"
    if exps[0].loss_name != "cross_entropy":
        return f"the {exps[0].loss_name} loss is trained with autograd"
    if any(e.loss.class_weights != "none" for e in exps):
        return "class weights are trained with autograd"
    return None


class Step(abc.ABC):
    """One training step of a population: `step(idx (K, B), gens) -> (logits, loss,
    objective, targets)`, gradients into `state.pop.grad`. It keeps no per-member value of
    its own: everything is read from `state` at each call (and what is derived from it is
    cached by `state.derived`, made again when the members change)."""

    name = "autograd"

    def __init__(self, state: PopulationState, x: torch.Tensor, y: torch.Tensor):
        self.state, self.x, self.y = state, x, y

    @property
    def pop(self) -> Population:
        return self.state.pop

    @property
    def products(self) -> list[str]:
        """Per Linear layer, whose matrix products it uses: "onednn" or "aten"."""
        return ["aten"] * len(self.pop.linears())

    @abc.abstractmethod
    def __call__(self, idx: torch.Tensor, gens: Sequence[torch.Generator]) -> StepOut:
        """One step on the batch rows idx (K, B), member k's dropout from gens[k]."""


class AutogradStep(Step):
    """The reference: the population's differentiable forward and torch.autograd."""

    def __call__(self, idx: torch.Tensor, gens: Sequence[torch.Generator]) -> StepOut:
        flat = idx.reshape(-1)  # index_select: a plain gather, faster than x[idx]
        xb = self.x.index_select(0, flat).view(*idx.shape, -1)  # (K, B, F)
        # (K, B) class indices, or (K, B, T) regression targets
        yb = self.y.index_select(0, flat).view(*idx.shape, *self.y.shape[1:])
        return autograd_step(self.state, xb, yb, gens)


def autograd_step(state: PopulationState, xb: torch.Tensor, yb: torch.Tensor,
                  gens: Sequence[torch.Generator], *, bf16: bool = False) -> StepOut:
    """forward → loss (+ explicit penalty) → backward, gradients into pop.grad; `bf16`
    autocasts the forward to bfloat16 (the CUDA epoch's training.precision bf16)."""
    pop, on = state.pop, state.switches
    cast = torch.autocast(device_type=pop.device.type, dtype=torch.bfloat16,
                          cache_enabled=False) if bf16 else contextlib.nullcontext()
    with cast:
        logits = pop.forward(xb, train=True, dropout=on.dropout, gens=gens)
    if bf16:
        logits = logits.float()
    loss = state.loss(logits, yb)  # (K,)
    objective = loss
    if any(on.penalty):
        objective = loss + penalty(pop.penalized(), state.table.l1, state.table.l2, on.penalty)
    grads = torch.autograd.grad(objective.sum(), pop.params)
    torch._foreach_copy_(pop.grads, grads)
    return logits.detach(), loss.detach(), objective.detach(), yb


@dataclass
class _Layer:
    """One Linear's operands for one batch size: 2-D views when K = 1 (nn.Linear's kernels,
    addmm/mm), (K, ...) tensors otherwise (baddbmm/bmm over the member axis). Made once."""

    inp: torch.Tensor  # (B, in) or (K, B, in): the layer's input
    w: torch.Tensor  # (out, in) or (K, out, in): a view into pop.flat
    w_t: torch.Tensor  # its transpose (a view)
    b: torch.Tensor  # (out,) or (K, 1, out)
    z: torch.Tensor  # pre-activation; the activation in place when it allows
    a: torch.Tensor  # act(z) (z itself when in place); unused for the last layer
    dz: torch.Tensor  # gradient w.r.t. z
    dz_t: torch.Tensor  # its transpose (a view)
    gw: torch.Tensor  # gradient views into pop.grad
    gb: torch.Tensor
    mask: torch.Tensor | None  # dropout's scaled keep mask, (K, B, out)
    h: torch.Tensor | None  # a ⊙ mask
    # oneDNN's operands member by member (empty: ATen's batched products): (inp, w, b, z),
    # (dzᵀ, inpᵀ, dW) and (dz, wᵀ, dz of the layer below)
    fwd: list[tuple[torch.Tensor, ...]] = field(default_factory=list)
    dw: list[tuple[torch.Tensor, ...]] = field(default_factory=list)
    dh: list[tuple[torch.Tensor, ...]] = field(default_factory=list)


@dataclass
class _Plan:
    """Everything one step of batch size B reads and writes, allocated once per (K, B)."""

    x: torch.Tensor  # (K, B, F) gathered inputs
    y: torch.Tensor  # (K, B) gathered targets
    layers: list[_Layer]
    logits: torch.Tensor  # (K, B, C)
    dl: torch.Tensor  # (K, B, C): gradient w.r.t. the logits (the last layer's dz)
    logp: torch.Tensor  # (K, B, C) log-softmax of the logits
    conf: torch.Tensor  # (K, B, 1) −(1 − ε): the target's share of the loss gradient


@dataclass
class _Workspace:
    """What the explicit step derives from the state: the activation, the penalty's
    per-element λs and scratch, each layer's products, and one `_Plan` per batch size."""

    act: Activation
    l1e: torch.Tensor  # (K, P) λ1 per element, 0 where the penalty does not apply
    l2e2: torch.Tensor  # (K, P) 2·λ2 per element
    scratch: torch.Tensor | None  # (K, P) for sign(w), when a penalty is on
    dnn: list[Linear | None]  # per layer: oneDNN's products or None (ATen's)
    matmul: Callable[..., torch.Tensor]  # mm (K = 1) or bmm
    batch_dim: int
    plans: dict[int, _Plan] = field(default_factory=dict)

    @classmethod
    def of(cls, state: PopulationState) -> _Workspace:
        pop, t = state.pop, state.table
        mask = pop.decay_mask()  # (1, P): where penalties apply
        dnn = onednn_linear() if pop.device.type == "cpu" else None
        one = pop.K == 1
        return cls(
            act=ACTIVATIONS[pop.activation], l1e=t.l1.view(-1, 1) * mask,
            l2e2=2 * t.l2.view(-1, 1) * mask,
            scratch=torch.empty_like(pop.flat) if any(state.switches.penalty) else None,
            dnn=[dnn if w.shape[-2] * w.shape[-1] >= ONEDNN_MIN else None
                 for w, _ in pop.linears()],
            matmul=torch.mm if one else torch.bmm, batch_dim=0 if one else 1)


class ExplicitStep(Step):
    """The hand-written forward and backward pass (no autograd, no allocation per step)."""

    name = "explicit"

    @property
    def ws(self) -> _Workspace:
        return self.state.derived("explicit", _Workspace.of)

    @property
    def products(self) -> list[str]:
        return ["aten" if d is None else "onednn" for d in self.ws.dnn]

    def _plan(self, B: int) -> _Plan:
        ws = self.ws
        if B in ws.plans:
            return ws.plans[B]
        pop, K, on = self.pop, self.pop.K, self.state.switches
        two_d = (lambda t: t[0]) if K == 1 else (lambda t: t)  # noqa: E731
        new = lambda w: torch.empty(K, B, w, device=pop.device)  # noqa: E731
        x = new(pop.in_features)
        inp, layers = x, []
        for j, ((w, b), (gw, gb)) in enumerate(zip(pop.linears(), pop.linear_grads(),
                                                   strict=True)):
            z = new(w.shape[-2])  # (K, B, out)
            hidden = j < len(pop.hidden)
            a = z if ws.act.in_place or not hidden else torch.empty_like(z)
            mask = torch.ones_like(z) if hidden and on.dropout is not None else None
            h = None if mask is None else torch.empty_like(z)
            dz = torch.empty_like(z)
            layers.append(_Layer(
                inp=two_d(inp), w=two_d(w), w_t=two_d(w).transpose(-1, -2),
                b=b[0] if K == 1 else b.unsqueeze(1), z=two_d(z), a=two_d(a),
                dz=two_d(dz), dz_t=two_d(dz).transpose(-1, -2), gw=two_d(gw), gb=two_d(gb),
                mask=mask, h=None if h is None else two_d(h)))
            if ws.dnn[j] is not None:  # oneDNN's operands, member by member
                L, each = layers[-1], (lambda t: t.unbind(0))
                L.fwd = list(zip(each(inp), each(w), each(b), each(z), strict=True))
                L.dw = list(zip([v.t() for v in each(dz)], [v.t() for v in each(inp)],
                                each(gw), strict=True))
                if j > 0:
                    L.dh = list(zip(each(dz), [v.t() for v in each(w)],
                                    each(layers[-2].dz.view(K, B, -1)), strict=True))
            inp = a if h is None else h
        eps = torch.zeros(K) if on.smoothing is None else on.smoothing.cpu()
        last = layers[-1]
        ws.plans[B] = _Plan(
            x=x, y=torch.empty(K, B, dtype=torch.long, device=pop.device), layers=layers,
            logits=last.z.view(K, B, -1), dl=last.dz.view(K, B, -1),
            logp=torch.empty(K, B, pop.n_classes, device=pop.device),
            conf=(eps - 1).view(K, 1, 1).expand(K, B, 1).contiguous().to(pop.device))
        return ws.plans[B]

    def __call__(self, idx: torch.Tensor, gens: Sequence[torch.Generator]) -> StepOut:
        plan, ws, on = self._plan(idx.shape[1]), self.ws, self.state.switches
        flat = idx.reshape(-1)
        torch.index_select(self.x, 0, flat, out=plan.x.view(len(flat), -1))
        torch.index_select(self.y, 0, flat, out=plan.y.view(-1))
        # forward → loss → backward → explicit penalty, gradients into pop.grad
        self._forward(plan, ws, on.dropout, gens)
        aten._log_softmax.out(plan.logits, -1, False, out=plan.logp)
        loss = smoothed_nll(plan.logp, plan.y, on.smoothing)
        cross_entropy_grad_(plan.dl, plan.logp, plan.y, plan.conf, on.smoothing)
        self._backward(plan, ws)
        objective = loss
        if any(on.penalty):
            t, pop = self.state.table, self.pop
            assert ws.scratch is not None
            objective = loss + penalty(pop.penalized(), t.l1, t.l2, on.penalty)
            penalty_grad_(pop.grad, pop.flat, ws.l1e, ws.l2e2, ws.scratch, on.penalty)
        return plan.logits, loss, objective, plan.y

    @staticmethod
    def _forward(plan: _Plan, ws: _Workspace, dropout: list[float] | None,
                 gens: Sequence[torch.Generator]) -> None:
        for L, dnn in zip(plan.layers, ws.dnn, strict=True):
            if dnn is None:
                affine(L.b, L.inp, L.w_t, out=L.z)
            else:
                for inp, w, b, z in L.fwd:
                    z.copy_(dnn(inp, w, b))
            if L is plan.layers[-1]:
                break
            ws.act.forward_(L.z, L.a)
            if L.mask is not None and L.h is not None and dropout is not None:
                # member k's mask from its own generator, exactly as the autograd forward
                for k, pk in enumerate(dropout):
                    if pk > 0:
                        dropout_mask_(L.mask[k], pk, gens[k])
                torch.mul(L.a, L.mask.view_as(L.a), out=L.h)

    @staticmethod
    def _backward(plan: _Plan, ws: _Workspace) -> None:
        layers = plan.layers
        for j in range(len(layers) - 1, -1, -1):
            L, dnn = layers[j], ws.dnn[j]
            if dnn is None:
                ws.matmul(L.dz_t, L.inp, out=L.gw)  # dW = dzᵀ h
            else:
                for dz_t, inp_t, gw in L.dw:
                    gw.copy_(dnn(dz_t, inp_t, None))
            torch.sum(L.dz, ws.batch_dim, out=L.gb)  # db = Σ_batch dz
            if j == 0:
                break  # no gradient w.r.t. the data
            below = layers[j - 1]
            if dnn is None:
                ws.matmul(L.dz, L.w, out=below.dz)  # dh = dz W
            else:
                for dz, w_t, dh in L.dh:
                    dh.copy_(dnn(dz, w_t, None))
            if below.mask is not None:
                below.dz.mul_(below.mask.view_as(below.dz))
            ws.act.backward_(below.dz, below.z, below.a)

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

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.train.losses import MemberLoss
from fcnet_cli.engine.train.population import Population

__all__ = ["ACTIVATION_GRADS", "ONEDNN_MIN", "ActivationGrad", "AutogradStep", "ExplicitStep",
           "Step", "fast_path_reason", "onednn_linear"]

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


@dataclass(frozen=True)
class ActivationGrad:
    """An activation in place (or into `out`) and its derivative, each written once."""

    forward: Callable[[torch.Tensor, torch.Tensor], object]  # (z, out): out ← act(z)
    # (g, z, a): g ← act'(z) ⊙ g in place, from the input z or the output a = act(z)
    backward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]
    in_place: bool  # act'(z) is a function of a alone, so a may overwrite z


ACTIVATION_GRADS: dict[str, ActivationGrad] = {
    # relu: a = max(z, 0); act' = 1[a > 0]
    "relu": ActivationGrad(lambda z, out: torch.relu_(z),
                           lambda g, z, a: aten.threshold_backward.grad_input(
                               g, a, 0.0, grad_input=g), True),
    # leaky_relu: a = z (z > 0) or 0.01·z; act' = 1 (a > 0) or 0.01
    "leaky_relu": ActivationGrad(lambda z, out: torch.nn.functional.leaky_relu_(z),
                                 lambda g, z, a: aten.leaky_relu_backward.grad_input(
                                     g, a, 0.01, True, grad_input=g), True),
    # sigmoid: a = 1 / (1 + e^-z); act' = a (1 - a)
    "sigmoid": ActivationGrad(lambda z, out: torch.sigmoid_(z),
                              lambda g, z, a: aten.sigmoid_backward.grad_input(
                                  g, a, grad_input=g), True),
    # tanh: act' = 1 - a²
    "tanh": ActivationGrad(lambda z, out: torch.tanh_(z),
                           lambda g, z, a: aten.tanh_backward.grad_input(g, a, grad_input=g),
                           True),
    # gelu (erf form): a = z Φ(z); act' = Φ(z) + z φ(z)
    "gelu": ActivationGrad(lambda z, out: aten.gelu.out(z, out=out),
                           lambda g, z, a: aten.gelu_backward.grad_input(
                               g, z, grad_input=g), False),
    # silu: a = z σ(z); act' = σ(z) (1 + z (1 - σ(z)))
    "silu": ActivationGrad(lambda z, out: aten.silu.out(z, out=out),
                           lambda g, z, a: aten.silu_backward.grad_input(g, z, grad_input=g),
                           False),
}


class Step:
    """Shared by both engines: the member table's per-step settings and the batch gather."""

    name = "autograd"

    def __init__(self, pop: Population, hp: dict[str, torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor, loss: MemberLoss):
        self.pop, self.x, self.y = pop, x, y
        self.loss = loss  # the members' loss (autograd reads it; the explicit step is CE only)
        self.refresh(hp)

    @property
    def products(self) -> list[str]:
        """Per Linear layer, whose matrix products it uses: "onednn" or "aten"."""
        return ["aten"] * len(self.pop.linears())

    def refresh(self, hp: dict[str, torch.Tensor]) -> None:
        """Read the member table (again after the population was compacted)."""
        self.hp = hp
        on = {n: bool((hp[n] > 0).any()) for n in ("dropout", "label_smoothing", "l1", "l2")}
        self.dropout = hp["dropout"].tolist() if on["dropout"] else None  # floats for bernoulli_
        self.smoothing = hp["label_smoothing"] if on["label_smoothing"] else None
        self.use_l1, self.use_l2 = on["l1"], on["l2"]


class AutogradStep(Step):
    """The reference: the population's differentiable forward and torch.autograd."""

    def __call__(self, idx: torch.Tensor, gens: Sequence[torch.Generator]) -> StepOut:
        pop, flat = self.pop, idx.reshape(-1)  # index_select: a plain gather, faster than x[idx]
        xb = self.x.index_select(0, flat).view(*idx.shape, -1)  # (K, B, F)
        # (K, B) class indices, or (K, B, T) regression targets
        yb = self.y.index_select(0, flat).view(*idx.shape, *self.y.shape[1:])
        # forward → loss (+ explicit penalty) → backward, gradients into pop.grad
        logits = pop.forward(xb, True, self.dropout, gens)
        loss = self.loss(logits, yb)  # (K,)
        objective = loss
        if self.use_l1 or self.use_l2:
            objective = loss + pop.penalty(self.hp["l1"], self.hp["l2"])
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


class ExplicitStep(Step):
    """The hand-written forward and backward pass (no autograd, no allocation per step)."""

    name = "explicit"

    def refresh(self, hp: dict[str, torch.Tensor]) -> None:
        super().refresh(hp)
        self.act = ACTIVATION_GRADS[self.pop.activation]
        self.plans: dict[int, _Plan] = {}
        mask = self.pop.decay_mask()  # (1, P): where penalties apply
        self.mask = mask[0]
        self.l1e = hp["l1"].view(-1, 1) * mask  # (K, P) λ1 per element
        self.l2e2 = 2 * hp["l2"].view(-1, 1) * mask  # (K, P) 2·λ2 per element
        self.scratch = torch.empty_like(self.pop.flat) if self.use_l1 or self.use_l2 else None
        one = self.pop.K == 1
        dnn = onednn_linear() if self.pop.device.type == "cpu" else None
        # per layer: oneDNN's products or None (ATen's)
        self.dnn: list[Linear | None] = [
            dnn if w.shape[-2] * w.shape[-1] >= ONEDNN_MIN else None for w, _ in self.pop.linears()]
        self.affine: Callable[..., torch.Tensor] = torch.addmm if one else torch.baddbmm
        self.matmul: Callable[..., torch.Tensor] = torch.mm if one else torch.bmm
        self.batch_dim = 0 if one else 1

    @property
    def products(self) -> list[str]:
        return ["aten" if d is None else "onednn" for d in self.dnn]

    def _plan(self, B: int) -> _Plan:
        if B in self.plans:
            return self.plans[B]
        pop, K = self.pop, self.pop.K
        two_d = (lambda t: t[0]) if K == 1 else (lambda t: t)  # noqa: E731
        new = lambda w: torch.empty(K, B, w, device=pop.device)  # noqa: E731
        x = new(pop.in_features)
        inp, layers = x, []
        for j, ((w, b), (gw, gb)) in enumerate(zip(pop.linears(), pop.linear_grads(),
                                                   strict=True)):
            z = new(w.shape[-2])  # (K, B, out)
            hidden = j < len(pop.hidden)
            a = z if self.act.in_place or not hidden else torch.empty_like(z)
            mask = torch.ones_like(z) if hidden and self.dropout is not None else None
            h = None if mask is None else torch.empty_like(z)
            dz = torch.empty_like(z)
            layers.append(_Layer(
                inp=two_d(inp), w=two_d(w), w_t=two_d(w).transpose(-1, -2),
                b=b[0] if K == 1 else b.unsqueeze(1), z=two_d(z), a=two_d(a),
                dz=two_d(dz), dz_t=two_d(dz).transpose(-1, -2), gw=two_d(gw), gb=two_d(gb),
                mask=mask, h=None if h is None else two_d(h)))
            if self.dnn[j] is not None:  # oneDNN's operands, member by member
                L, each = layers[-1], (lambda t: t.unbind(0))
                L.fwd = list(zip(each(inp), each(w), each(b), each(z), strict=True))
                L.dw = list(zip([v.t() for v in each(dz)], [v.t() for v in each(inp)],
                                each(gw), strict=True))
                if j > 0:
                    L.dh = list(zip(each(dz), [v.t() for v in each(w)],
                                    each(layers[-2].dz.view(K, B, -1)), strict=True))
            inp = a if h is None else h
        eps = torch.zeros(K) if self.smoothing is None else self.smoothing.cpu()
        last = layers[-1]
        self.plans[B] = _Plan(
            x=x, y=torch.empty(K, B, dtype=torch.long, device=pop.device), layers=layers,
            logits=last.z.view(K, B, -1), dl=last.dz.view(K, B, -1),
            logp=torch.empty(K, B, pop.n_classes, device=pop.device),
            conf=(eps - 1).view(K, 1, 1).expand(K, B, 1).contiguous().to(pop.device))
        return self.plans[B]

    def __call__(self, idx: torch.Tensor, gens: Sequence[torch.Generator]) -> StepOut:
        plan = self._plan(idx.shape[1])
        flat = idx.reshape(-1)
        torch.index_select(self.x, 0, flat, out=plan.x.view(len(flat), -1))
        torch.index_select(self.y, 0, flat, out=plan.y.view(-1))
        # forward → loss → backward → explicit penalty, gradients into pop.grad
        self._forward(plan, gens)
        loss = self._loss_grad(plan)
        self._backward(plan)
        objective = loss + self._penalty() if self.use_l1 or self.use_l2 else loss
        return plan.logits, loss, objective, plan.y

    def _forward(self, plan: _Plan, gens: Sequence[torch.Generator]) -> None:
        for L, dnn in zip(plan.layers, self.dnn, strict=True):
            if dnn is None:
                self.affine(L.b, L.inp, L.w_t, out=L.z)
            else:
                for inp, w, b, z in L.fwd:
                    z.copy_(dnn(inp, w, b))
            if L is plan.layers[-1]:
                break
            self.act.forward(L.z, L.a)
            if L.mask is not None and L.h is not None and self.dropout is not None:
                # member k's mask from its own generator, exactly as the autograd forward
                for k, pk in enumerate(self.dropout):
                    if pk > 0:  # F.dropout: empty_like(x).bernoulli_(1 - p).div_(1 - p)
                        L.mask[k].bernoulli_(1 - pk, generator=gens[k]).div_(1 - pk)
                torch.mul(L.a, L.mask.view_as(L.a), out=L.h)

    def _loss_grad(self, plan: _Plan) -> torch.Tensor:
        """Cross-entropy per member (K,) and its gradient w.r.t. the logits into plan.dl."""
        logits, dl, logp = plan.logits, plan.dl, plan.logp
        aten._log_softmax.out(logits, -1, False, out=logp)
        target = plan.y.unsqueeze(-1)  # (K, B, 1)
        logp_y = logp.gather(-1, target).squeeze(-1)  # (K, B)
        torch.exp(logp, out=dl)  # softmax
        dl.scatter_add_(-1, target, plan.conf)  # − (1 − ε) at the target
        if self.smoothing is None:
            loss = -logp_y.mean(1)
        else:
            eps = self.smoothing.unsqueeze(1)  # (K, 1)
            loss = ((eps - 1) * logp_y - eps * logp.mean(-1)).mean(1)
            dl.sub_(eps.unsqueeze(-1) / logits.shape[-1])  # − ε / C everywhere
        dl.mul_(1.0 / logits.shape[1])  # the batch mean
        return loss

    def _backward(self, plan: _Plan) -> None:
        layers = plan.layers
        for j in range(len(layers) - 1, -1, -1):
            L, dnn = layers[j], self.dnn[j]
            if dnn is None:
                self.matmul(L.dz_t, L.inp, out=L.gw)  # dW = dzᵀ h
            else:
                for dz_t, inp_t, gw in L.dw:
                    gw.copy_(dnn(dz_t, inp_t, None))
            torch.sum(L.dz, self.batch_dim, out=L.gb)  # db = Σ_batch dz
            if j == 0:
                break  # no gradient w.r.t. the data
            below = layers[j - 1]
            if dnn is None:
                self.matmul(L.dz, L.w, out=below.dz)  # dh = dz W
            else:
                for dz, w_t, dh in L.dh:
                    dh.copy_(dnn(dz, w_t, None))
            if below.mask is not None:
                below.dz.mul_(below.mask.view_as(below.dz))
            self.act.backward(below.dz, below.z, below.a)

    def _penalty(self) -> torch.Tensor:
        """λ1·Σ|w| + λ2·Σw² per member (K,); adds λ1·sign(w) + 2λ2·w to the gradients."""
        p, g, s = self.pop.flat, self.pop.grad, self.scratch
        assert s is not None
        total = torch.zeros(self.pop.K, device=p.device)
        if self.use_l1:
            total += self.hp["l1"] * torch.mv(torch.abs(p, out=s), self.mask)
            g.addcmul_(torch.sign(p, out=s), self.l1e)
        if self.use_l2:
            total += self.hp["l2"] * torch.mv(torch.mul(p, p, out=s), self.mask)
            g.addcmul_(p, self.l2e2)
        return total

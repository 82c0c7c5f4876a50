"""Each piece of the population's maths, written once.

The autograd step, the hand-written step (engine/train/steps.py), the validation pass and the
exportable `nn.Sequential` (engine/model.py) all call these:

    activation   one record per name: module, functional, in-place forward, derivative
    affine       z = h Wᵀ + b for one member (addmm) or K members (baddbmm)
    dropout      member k's scaled keep mask from its own generator, as F.dropout draws it
    penalty      λ1 Σ|w| + λ2 Σw² per member, and its gradient λ1 sign(w) + 2 λ2 w
    cross-entropy  from log-probabilities, with label smoothing, and its gradient
    F1           per-class precision, recall and F1 from a confusion matrix
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "Activation", "affine", "cross_entropy_grad_", "dropout_mask_",
           "penalty", "penalty_grad_", "precision_recall_f1", "smoothed_nll"]

aten = torch.ops.aten
Tensor = torch.Tensor


@dataclass(frozen=True)
class Activation:
    """One activation: the module `build_mlp` places, the functional the autograd forward
    calls, and the in-place forward and derivative the hand-written step calls."""

    module: type[nn.Module]
    fn: Callable[[Tensor], Tensor]
    forward_: Callable[[Tensor, Tensor], object]  # (z, out): out ← act(z) (z itself if in_place)
    # (g, z, a): g ← act'(z) ⊙ g in place, from the input z or the output a = act(z)
    backward_: Callable[[Tensor, Tensor, Tensor], object]
    in_place: bool  # act'(z) is a function of a alone, so a may overwrite z


ACTIVATIONS: dict[str, Activation] = {
    # relu: a = max(z, 0); act' = 1[a > 0]
    "relu": Activation(nn.ReLU, F.relu, lambda z, out: torch.relu_(z),
                       lambda g, z, a: aten.threshold_backward.grad_input(
                           g, a, 0.0, grad_input=g), True),
    # sigmoid: a = 1 / (1 + e^-z); act' = a (1 - a)
    "sigmoid": Activation(nn.Sigmoid, torch.sigmoid, lambda z, out: torch.sigmoid_(z),
                          lambda g, z, a: aten.sigmoid_backward.grad_input(g, a, grad_input=g),
                          True),
    # tanh: act' = 1 - a²
    "tanh": Activation(nn.Tanh, torch.tanh, lambda z, out: torch.tanh_(z),
                       lambda g, z, a: aten.tanh_backward.grad_input(g, a, grad_input=g), True),
    # gelu (erf form): a = z Φ(z); act' = Φ(z) + z φ(z)
    "gelu": Activation(nn.GELU, F.gelu, lambda z, out: aten.gelu.out(z, out=out),
                       lambda g, z, a: aten.gelu_backward.grad_input(g, z, grad_input=g), False),
    # leaky_relu (slope 0.01): a = z (z > 0) or 0.01·z; act' = 1 (a > 0) or 0.01
    "leaky_relu": Activation(nn.LeakyReLU, F.leaky_relu, lambda z, out: F.leaky_relu_(z),
                             lambda g, z, a: aten.leaky_relu_backward.grad_input(
                                 g, a, 0.01, True, grad_input=g), True),
    # silu: a = z σ(z); act' = σ(z) (1 + z (1 - σ(z)))
    "silu": Activation(nn.SiLU, F.silu, lambda z, out: aten.silu.out(z, out=out),
                       lambda g, z, a: aten.silu_backward.grad_input(g, z, grad_input=g), False),
}


def affine(b: Tensor, h: Tensor, w_t: Tensor, out: Tensor | None = None) -> Tensor:
    """h @ w_t + b: one member's 2-D operands take nn.Linear's kernel (addmm), K members'
    (K, B, in) @ (K, in, out) + (K, 1, out) a batched one (baddbmm)."""
    op = torch.addmm if h.dim() == 2 else torch.baddbmm
    return op(b, h, w_t) if out is None else op(b, h, w_t, out=out)


def dropout_mask_(out: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """out ← a keep mask with rate p, scaled by 1 / (1 - p), drawn from `gen` exactly as
    F.dropout draws it on the CPU: empty_like(x).bernoulli_(1 - p).div_(1 - p)."""
    return out.bernoulli_(1 - p, generator=gen).div_(1 - p)


def penalty(tensors: Sequence[Tensor], l1: Tensor, l2: Tensor,
            use: tuple[bool, bool]) -> Tensor:
    """λ1·Σ|t| + λ2·Σt² per member (K,) over (K, ...) tensors, differentiable.

    `use` (L1 on, L2 on) is read once by the caller: a captured CUDA step cannot read the
    λ columns on the host."""
    total = torch.zeros(l1.shape[0], device=l1.device)
    for t in tensors:
        dims = tuple(range(1, t.dim()))
        if use[0]:
            total = total + l1 * t.abs().sum(dims)
        if use[1]:
            total = total + l2 * (t * t).sum(dims)
    return total


def penalty_grad_(g: Tensor, p: Tensor, l1e: Tensor, l2e2: Tensor, scratch: Tensor,
                  use: tuple[bool, bool]) -> None:
    """g ← g + λ1·sign(p) + 2λ2·p, all (K, P); l1e and l2e2 hold λ1 and 2λ2 per element (0
    where the penalty does not apply): the gradient of `penalty`."""
    if use[0]:
        g.addcmul_(torch.sign(p, out=scratch), l1e)
    if use[1]:
        g.addcmul_(p, l2e2)


def smoothed_nll(logp: Tensor, y: Tensor, smoothing: Tensor | None) -> Tensor:
    """Cross-entropy per member (K,) from log-probabilities logp (K, B, C), targets y (K, B):
    mean_b [ -(1-ε) log p[y] - ε mean_c log p ] (nn.CrossEntropyLoss(label_smoothing=ε))."""
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (K, B)
    if smoothing is None:
        return nll.mean(1)
    eps = smoothing.unsqueeze(1)  # (K, 1)
    return ((1 - eps) * nll - eps * logp.mean(-1)).mean(1)


def cross_entropy_grad_(dl: Tensor, logp: Tensor, y: Tensor, conf: Tensor,
                        smoothing: Tensor | None) -> None:
    """dl ← ∂ smoothed_nll / ∂ logits = (softmax − (1−ε) onehot(y) − ε/C) / B, (K, B, C).

    conf (K, B, 1) holds −(1 − ε) per member (made once per batch size)."""
    torch.exp(logp, out=dl)  # softmax
    dl.scatter_add_(-1, y.unsqueeze(-1), conf)  # − (1 − ε) at the target
    if smoothing is not None:
        dl.sub_(smoothing.view(-1, 1, 1) / dl.shape[-1])  # − ε / C everywhere
    dl.mul_(1.0 / dl.shape[1])  # the batch mean


def precision_recall_f1(confusion: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class precision, recall and F1 (K, C), float64, from confusion (K, C, C) (rows =
    true class); each is 0 where undefined (no predictions, no examples), like scikit-learn."""
    conf = confusion.double()
    tp = conf.diagonal(dim1=1, dim2=2)  # (K, C)
    support, predicted = conf.sum(2), conf.sum(1)  # (K, C) true / predicted counts
    recall = torch.where(support > 0, tp / support.clamp(min=1), 0.0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), 0.0)
    return precision, recall, f1

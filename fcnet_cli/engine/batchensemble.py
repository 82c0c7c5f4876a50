"""`model.ensemble_kind: shared`: K members sharing each layer's weight matrix (BatchEnsemble,
Wen et al. 2020; the MLP of TabM, Gorishniy et al. 2024).

Layer l of member k is ``((x_k ⊙ r_k) Wᵀ) ⊙ s_k + b_k``: one weight W (out, in) for every
member, and per member an input scaling r_k (in,), an output scaling s_k (out,) and a bias
b_k (out,). Activations and dropout sit between the layers as in `build_mlp`. The output is an
`Ensemble`'s: classification the log of the members' mean probability, regression their mean
prediction, so evaluation, prediction and export take it unchanged.

    state dict   layers.<l>.weight (out, in)   layers.<l>.r (K, in)
                 layers.<l>.s (K, out)         layers.<l>.bias (K, out)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import ModelConfig
from fcnet_cli.engine.train.kernels import ACTIVATIONS, dropout_mask_

__all__ = ["BatchEnsemble", "BatchLinear", "MemberView", "mean_of_members"]


def mean_of_members(z: torch.Tensor, *, regression: bool) -> torch.Tensor:
    """Members' outputs (K, batch, C) as one: regression their mean; classification the log
    of their mean probability, ``logsumexp_k log_softmax(z_k) − log K``."""
    if regression:
        return z.mean(0)
    return torch.logsumexp(torch.log_softmax(z, dim=-1), dim=0) - math.log(z.shape[0])


class BatchLinear(nn.Module):
    """K linear layers sharing `weight`: member k maps x_k to ((x_k ⊙ r_k) Wᵀ) ⊙ s_k + b_k.

    Initialization: W and each member's bias as `nn.Linear`'s (from the global RNG), r and s
    random signs ±1 (BatchEnsemble's), so the members differ from the first step.
    """

    def __init__(self, in_features: int, out_features: int, members: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.r = nn.Parameter(torch.empty(members, in_features))
        self.s = nn.Parameter(torch.empty(members, out_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's
        bound = 1 / math.sqrt(self.weight.shape[1]) if self.weight.shape[1] > 0 else 0.0
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            for t in (self.r, self.s):
                t.copy_(torch.randint(0, 2, t.shape, device=t.device).to(t.dtype) * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (K, batch, in) -> (K, batch, out)."""
        return (x * self.r.unsqueeze(1)) @ self.weight.t() * self.s.unsqueeze(1) \
            + self.bias.unsqueeze(1)

    def member(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Member k alone: x (batch, in) -> (batch, out)."""
        return (x * self.r[k]) @ self.weight.t() * self.s[k] + self.bias[k]


class BatchEnsemble(nn.Module):
    """An MLP of `BatchLinear` layers: input (batch, F) broadcast to the K members, output
    their mean prediction (`mean_of_members`); `members_forward` gives each member's."""

    def __init__(self, cfg: ModelConfig, in_features: int, n_outputs: int, *,
                 regression: bool):
        super().__init__()
        widths = [in_features, *cfg.hidden, n_outputs]
        k = cfg.ensemble_size
        self.layers = nn.ModuleList(BatchLinear(a, b, k)
                                    for a, b in zip(widths, widths[1:], strict=False))
        self.act = ACTIVATIONS[cfg.activation].module()
        self.p = cfg.dropout
        self.k = k
        self.regression = regression

    def members_forward(self, x: torch.Tensor, gen: torch.Generator | None = None
                        ) -> torch.Tensor:
        """x (batch, F) -> each member's output (K, batch, C). In training mode dropout
        draws its masks from `gen` (the global RNG when None)."""
        h = x.unsqueeze(0).expand(self.k, *x.shape)  # (K, batch, F)
        last = len(self.layers) - 1
        for j, layer in enumerate(self.layers):
            h = layer(h)
            if j < last:
                h = self._dropout(self.act(h), gen)
        return h

    def _dropout(self, h: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return h
        if gen is None:
            return F.dropout(h, self.p, training=True)
        return h * dropout_mask_(torch.empty_like(h), self.p, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_of_members(self.members_forward(x), regression=self.regression)

    def member(self, k: int) -> MemberView:
        """Member k as a module of its own (its weights are this module's)."""
        return MemberView(self, k)


class MemberView(nn.Module):
    """Member k of a `BatchEnsemble` (evaluation): x (batch, F) -> (batch, C)."""

    def __init__(self, ensemble: BatchEnsemble, k: int):
        super().__init__()
        self.ensemble, self.k = ensemble, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net, h = self.ensemble, x
        last = len(net.layers) - 1
        for j, layer in enumerate(net.layers):
            assert isinstance(layer, BatchLinear)
            h = layer.member(h, self.k)
            if j < last:
                h = net.act(h)  # eval: no dropout
        return h

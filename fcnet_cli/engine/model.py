"""The canonical, exportable model: a plain ``nn.Sequential`` MLP, or an `Ensemble` of them."""

from __future__ import annotations

import math

import torch
from torch import nn

from fcnet_cli.config import ModelConfig
from fcnet_cli.engine.train.kernels import ACTIVATIONS

__all__ = ["Ensemble", "build_mlp", "build_model", "linear_indices"]


def build_mlp(cfg: ModelConfig, in_features: int, n_classes: int) -> nn.Sequential:
    """Linear → [BatchNorm1d] → activation → Dropout per hidden width, then a Linear to logits.

    Dropout is always present (identity at p = 0) so that the state-dict keys depend only on
    the layout, not on the dropout rate. Initialization is `nn.Linear`'s, from the global RNG.
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in cfg.hidden:
        layers.append(nn.Linear(width, h))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(ACTIVATIONS[cfg.activation].module())
        layers.append(nn.Dropout(cfg.dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def linear_indices(hidden: list[int], batch_norm: bool) -> list[int]:
    """Positions of the Linear modules inside `build_mlp`'s Sequential."""
    per_hidden = 4 if batch_norm else 3
    return [i * per_hidden for i in range(len(hidden) + 1)]


class Ensemble(nn.Module):
    """N MLPs of one layout whose output is their mean prediction.

    Classification: the log of the members' mean probability, ``log(mean_k softmax(z_k))``
    (batch, C), so that ``softmax`` of it is the mean probability, its argmax the most probable
    class and cross-entropy on it the ensemble's log loss. Regression: the mean of the
    members' (standardized) predictions (batch, T). State-dict keys: ``members.<k>.<key>``.
    """

    def __init__(self, members: list[nn.Module], regression: bool):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.regression = regression

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.stack([m(x) for m in self.members])  # (N, batch, C)
        if self.regression:
            return z.mean(0)
        return torch.logsumexp(torch.log_softmax(z, dim=-1), dim=0) - math.log(len(self.members))


def build_model(cfg: ModelConfig, in_features: int, n_outputs: int,
                task: str = "classification") -> nn.Module:
    """`build_mlp`, or with ``cfg.ensemble`` N > 1 an `Ensemble` of N of them (the module a
    checkpoint's weights load into)."""
    if cfg.ensemble == 1:
        return build_mlp(cfg, in_features, n_outputs)
    return Ensemble([build_mlp(cfg, in_features, n_outputs) for _ in range(cfg.ensemble)],
                    task == "regression")

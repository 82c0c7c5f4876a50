"""The canonical, exportable model: a plain ``nn.Sequential`` MLP, an `Ensemble` of them, or a
`BatchEnsemble` (``model.ensemble_kind: shared``, engine/batchensemble.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from fcnet_cli.config import ModelConfig
from fcnet_cli.engine.batchensemble import BatchEnsemble, mean_of_members
from fcnet_cli.engine.train.kernels import ACTIVATIONS

__all__ = ["Ensemble", "build_mlp", "build_model", "linear_indices", "member_configs",
           "member_modules"]


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


def linear_indices(hidden: list[int], *, batch_norm: bool) -> list[int]:
    """Positions of the Linear modules inside `build_mlp`'s Sequential."""
    per_hidden = 4 if batch_norm else 3
    return [i * per_hidden for i in range(len(hidden) + 1)]


class Ensemble(nn.Module):
    """N MLPs whose output is their (weighted) mean prediction.

    Classification: the log of the members' mean probability, ``log(Σ_k w_k softmax(z_k))``
    (batch, C), so that ``softmax`` of it is the mean probability, its argmax the most probable
    class and cross-entropy on it the ensemble's log loss. Regression: the weighted mean of the
    members' (standardized) predictions (batch, T). `weights`: one per member, > 0, summing to
    1 (greedy selection's); None: equal. State-dict keys: ``members.<k>.<key>`` (the weights
    are not in it: a selected ensemble's checkpoint records them in meta.json).
    """

    def __init__(self, members: list[nn.Module], *, regression: bool,
                 weights: Sequence[float] | None = None):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.regression = regression
        self.weighted = weights is not None
        w = torch.tensor(list(weights) if weights is not None else [1.0] * len(members),
                         dtype=torch.float32, device="cpu")  # real even under torch.device("meta")
        self.register_buffer("weights", w.reshape(-1, 1, 1), persistent=False)  # (N, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.stack([m(x) for m in self.members])  # (N, batch, C)
        w: torch.Tensor = self.weights  # type: ignore[assignment]
        if not self.weighted:  # equal weights: the plain mean, as before weights existed
            return mean_of_members(z, regression=self.regression)
        if self.regression:
            return (z * w).sum(0)
        return torch.logsumexp(torch.log_softmax(z, dim=-1) + torch.log(w), dim=0)


def member_configs(meta: dict[str, Any]) -> dict[str, Any]:
    """A selected ensemble's members as `build_model`'s keywords, from a checkpoint's meta.json
    (``member_models``: each member's model section; ``member_weights``); {} otherwise.

    Raises:
        ValueError: member configs or weights that cannot make a model.
    """
    models, weights = meta.get("member_models"), meta.get("member_weights")
    if models is None and weights is None:
        return {}
    if not isinstance(models, list) or not isinstance(weights, list) or not models \
            or len(models) != len(weights):
        raise ValueError("member_models and member_weights must be two lists of one entry "
                         "per member")
    if not all(type(w) in (int, float) and math.isfinite(w) and w > 0 for w in weights) \
            or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"member_weights must be positive and sum to 1 (got {weights})")
    try:
        configs = [ModelConfig.model_validate(m) for m in models]
    except ValidationError as e:
        raise ValueError(f"member_models: {e.errors()[0]['msg']}") from None
    return {"members": configs, "weights": [float(w) for w in weights]}


def build_model(cfg: ModelConfig, in_features: int, n_outputs: int,
                task: str = "classification", *, members: Sequence[ModelConfig] | None = None,
                weights: Sequence[float] | None = None) -> nn.Module:
    """`build_mlp`, or with ``cfg.ensemble`` N > 1 an `Ensemble` of N of them (the module a
    checkpoint's weights load into), or with ``cfg.ensemble_kind`` shared a `BatchEnsemble`.
    `members` (each member's own config: widths may differ) and `weights`: a selected ensemble
    (`member_configs` of its checkpoint)."""
    if cfg.ensemble_kind == "shared":
        return BatchEnsemble(cfg, in_features, n_outputs, regression=task == "regression")
    if members is not None:
        return Ensemble([build_mlp(m, in_features, n_outputs) for m in members],
                        regression=task == "regression", weights=weights)
    if cfg.ensemble == 1:
        return build_mlp(cfg, in_features, n_outputs)
    return Ensemble([build_mlp(cfg, in_features, n_outputs) for _ in range(cfg.ensemble_size)],
                    regression=task == "regression")


def member_modules(net: nn.Module) -> list[nn.Module]:
    """An ensemble's members, each a module of its own (x (batch, F) -> (batch, C)); [] for
    one MLP."""
    if isinstance(net, Ensemble):
        return list(net.members)
    if isinstance(net, BatchEnsemble):
        return [net.member(k) for k in range(net.k)]
    return []

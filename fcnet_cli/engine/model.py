"""The canonical, exportable model: a plain ``nn.Sequential`` MLP."""

from __future__ import annotations

from torch import nn

from fcnet_cli.config import ModelConfig

__all__ = ["ACTIVATIONS", "build_mlp", "linear_indices"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


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
        layers.append(ACTIVATIONS[cfg.activation]())
        layers.append(nn.Dropout(cfg.dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def linear_indices(hidden: list[int], batch_norm: bool) -> list[int]:
    """Positions of the Linear modules inside `build_mlp`'s Sequential."""
    per_hidden = 4 if batch_norm else 3
    return [i * per_hidden for i in range(len(hidden) + 1)]

"""Which torch device a run trains on: `training.device` resolved, or refused when absent."""

from __future__ import annotations

import torch

from fcnet_cli.errors import RunError

__all__ = ["pick_device"]


def pick_device(name: str) -> torch.device:
    """auto → cuda when available, else cpu. Asking for an absent device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("training.device is 'cuda' but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RunError("training.device is 'mps' but MPS is not available")
    return torch.device(name)

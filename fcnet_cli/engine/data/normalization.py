"""Per-feature scaling fitted on the training split (stored in every checkpoint).

``standard`` / ``minmax`` / ``none`` are affine; ``robust`` is the affine median / IQR scaling
followed by the smooth clip ``z / sqrt(1 + (z / 3)^2)`` (RealMLP's preprocessing): outliers are
squashed towards ±3 while the bulk of the column stays nearly linear. Every kind is elementwise,
so the serving module and the exported graph compute it with the same ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fcnet_cli.config import NORMALIZATIONS
from fcnet_cli.errors import DataError

__all__ = ["CLIP", "Normalization", "smooth_clip"]

CLIP = 3.0  # robust: where the smooth clip bends (in robust standard deviations)
IQR_TO_STD = 1.349  # the interquartile range of a normal distribution, in standard deviations


def smooth_clip(z: torch.Tensor, bend: float = CLIP) -> torch.Tensor:
    """``z / sqrt(1 + (z / bend)^2)``: ≈ z near 0, tends to ±bend; a new tensor. (TorchScript
    compiles it inside the serving module: no globals in the body.)"""
    return z / torch.sqrt(1 + (z / bend) ** 2)


@dataclass
class Normalization:
    """Per-feature scaling, ``x_normalized = (x - shift) / scale`` (``robust``: then
    `smooth_clip`)."""

    kind: str
    shift: torch.Tensor  # (F,) float32
    scale: torch.Tensor  # (F,) float32, never 0

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.shift.numel():
            raise DataError(f"normalization expects {self.shift.numel()} features, "
                            f"data has {x.shape[-1]}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` of shape (N, F); returns a new float32 tensor on ``x``'s device."""
        self._check(x)
        z = (x - self.shift.to(x.device)) / self.scale.to(x.device)
        return smooth_clip(z) if self.clip else z

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """In-place `apply` for a float32 tensor the caller owns (no extra copy)."""
        self._check(x)
        x.sub_(self.shift.to(x.device)).div_(self.scale.to(x.device))
        return x.copy_(smooth_clip(x)) if self.clip else x

    @property
    def clip(self) -> bool:
        """Whether `smooth_clip` follows the affine step (``robust``)."""
        return self.kind == "robust"

    def to_json(self) -> dict:
        """Plain-JSON form: ``{"kind": ..., "shift": [floats], "scale": [floats]}``."""
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> Normalization:
        """Rebuild from `to_json` output; DataError if ``d`` is not well formed."""
        if not isinstance(d, dict) or set(d) != {"kind", "shift", "scale"}:
            raise DataError(f"normalization must be a dict with keys kind, shift, scale "
                            f"(got {d!r:.80})")
        if d["kind"] not in NORMALIZATIONS:
            raise DataError(f"normalization kind must be one of {NORMALIZATIONS} "
                            f"(got {d['kind']!r})")
        shift, scale = (_floats(d[key], f"normalization {key}") for key in ("shift", "scale"))
        if shift.numel() != scale.numel():
            raise DataError(f"normalization shift has {shift.numel()} values, "
                            f"scale has {scale.numel()}")
        if not (torch.isfinite(shift).all() and torch.isfinite(scale).all()) or (scale == 0).any():
            raise DataError("normalization shift/scale must be finite and scale non-zero")
        return cls(d["kind"], shift, scale)

    @classmethod
    def fit(cls, kind: str, x_train: torch.Tensor) -> Normalization:
        """Fit on the training split (N, F) only: ``standard`` (mean / population std),
        ``minmax`` (min / max − min), ``robust`` (median / IQR/1.349, the std where the IQR
        is 0, as one-hot columns of rare categories have) or ``none``; constant features get
        scale 1."""
        x = x_train.detach().to("cpu", torch.float32)  # (N, F); pairwise sums keep it stable
        lo, hi = torch.aminmax(x, dim=0) if len(x) else (x.sum(0), x.sum(0))  # (F,)
        if kind == "standard":
            scale, shift = torch.std_mean(x, 0, correction=0)
        elif kind == "robust":
            q = torch.quantile(x.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64),
                               dim=0) if len(x) else torch.zeros(3, x.shape[1])  # (3, F)
            shift, scale = q[1], (q[2] - q[0]) / IQR_TO_STD
            scale = torch.where(scale > 0, scale, x.double().std(0, correction=0))
        elif kind == "minmax":
            shift, scale = lo, hi - lo
        elif kind == "none":
            shift, scale = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
        else:
            raise DataError(f"normalization kind must be one of {NORMALIZATIONS} (got {kind!r})")
        # exact test for constant columns: a float std of identical values may be ~1e-17, not 0
        scale = torch.where((hi == lo) | (scale == 0), torch.ones_like(scale), scale)
        return cls(kind, shift.float(), scale.float())


def _floats(v: Any, what: str) -> torch.Tensor:
    if not isinstance(v, list) or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in v):
        raise DataError(f"{what} must be a list of numbers")
    return torch.tensor(v, dtype=torch.float32).reshape(-1)  # (F,)

"""Per-feature affine scaling fitted on the training split (stored in every checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fcnet_cli.config import NORMALIZATIONS
from fcnet_cli.errors import DataError

__all__ = ["Normalization"]


@dataclass
class Normalization:
    """Per-feature affine scaling, ``x_normalized = (x - shift) / scale``."""

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
        return (x - self.shift.to(x.device)) / self.scale.to(x.device)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """In-place `apply` for a float32 tensor the caller owns (no extra copy)."""
        self._check(x)
        return x.sub_(self.shift.to(x.device)).div_(self.scale.to(x.device))

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
        ``minmax`` (min / max − min) or ``none``; constant features get scale 1."""
        x = x_train.detach().to("cpu", torch.float32)  # (N, F); pairwise sums keep it stable
        lo, hi = torch.aminmax(x, dim=0) if len(x) else (x.sum(0), x.sum(0))  # (F,)
        if kind == "standard":
            scale, shift = torch.std_mean(x, 0, correction=0)
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

"""Numerical embeddings (`model.num_embeddings`): each numeric input, once normalized, becomes
a short vector in front of the network; fitted on the training split, stored with the
preprocessing like the normalization.

- ``piecewise_linear`` (PLE; Gorishniy, Rubachev, Babenko, NeurIPS 2022, "On Embeddings for
  Numerical Features in Tabular Deep Learning"): bin edges b_0 < ... < b_T at quantiles of
  the training split (T ≤ `model.num_bins`, fewer where the column has fewer distinct values);
  component t is 1 for a bin wholly below the value, the value's fractional position in its
  own bin, 0 above. The first component is not clipped below 0, the last not above 1, so
  values outside the training range stay distinguishable (the paper's definition).
- ``periodic`` (as RealMLP's PBLD, Holzmüller et al., NeurIPS 2024): the value followed by
  ``sin(2π f_j x)`` and ``cos(2π f_j x)`` for k frequencies f_j ~ N(0, σ) per column, drawn
  from ``data.split_seed``. Unlike PBLD the frequencies are fixed, not trained, and no
  per-column linear layer follows: the embedding is preprocessing, and the network is the
  unchanged MLP (its first layer sees the expanded inputs).

Only the inputs of numeric columns are embedded (one-hot categories, dates and missing
indicators pass through); an imputed cell is embedded at its imputed value, and its
indicator input stays as it was. Each embedded input is replaced, in place, by its vector,
so the network's inputs keep the columns' order. Every step is an elementwise op, a
Max/Min or a gather: the serving module and the exported ONNX graph compute it the same way.
Training fits it on loaded splits with `engine.data.embedded.embed_splits`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fcnet_cli.config import NUM_EMBEDDINGS
from fcnet_cli.engine.data.cells import Column
from fcnet_cli.errors import DataError

__all__ = ["EmbeddingModule", "NumEmbedding", "numeric_inputs"]


@dataclass
class NumEmbedding:
    """A fitted numerical embedding: (N, in_features) normalized inputs → (N, out_features).

    ``params`` holds one row per embedded input: the bin edges (``piecewise_linear``, (E, T+1)
    padded with the last edge where a column has fewer bins) or the frequencies
    (``periodic``, (E, k)); ``bins`` the number of bins per embedded input (PLE; else all 0).
    """

    kind: str
    in_features: int  # model inputs before the embedding (the normalization's width)
    inputs: list[int]  # positions of the embedded inputs, increasing
    params: torch.Tensor  # (E, T+1) edges or (E, k) frequencies, float32
    bins: list[int]  # PLE: bins per embedded input (≥ 1); periodic: []

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(cls, kind: str, x_train: torch.Tensor, inputs: list[int], *, n_bins: int = 16,
            n_frequencies: int = 8, sigma: float = 0.1, seed: int = 0) -> NumEmbedding:
        """Fit on the normalized training split ``x_train`` (N, F); ``inputs`` the positions
        to embed. PLE edges are quantiles of the training values; periodic frequencies are
        drawn from ``seed`` and do not look at the data."""
        x = x_train.detach().to("cpu", torch.float32)
        if kind == "piecewise_linear":
            edges = [_edges(x[:, j], n_bins) for j in inputs]
            return cls(kind, x.shape[1], list(inputs), **_padded(edges))
        if kind == "periodic":
            gen = torch.Generator().manual_seed(int(seed))
            freq = torch.randn(len(inputs), n_frequencies, generator=gen, dtype=torch.float64)
            return cls(kind, x.shape[1], list(inputs), (freq * sigma).float(), [])
        raise DataError(f"num_embeddings must be one of {NUM_EMBEDDINGS[1:]} (got {kind!r})")

    # ------------------------------------------------------------------ shape

    def widths(self) -> list[int]:
        """The number of network inputs each embedded input becomes."""
        if self.kind == "piecewise_linear":
            return list(self.bins)
        return [1 + 2 * int(self.params.shape[1])] * len(self.inputs)

    @property
    def out_features(self) -> int:
        """The network's input width after the embedding."""
        return self.in_features - len(self.inputs) + sum(self.widths())

    def output_names(self, names: list[str]) -> list[str]:
        """Network input names from the `in_features` input names: ``age#bin3``,
        ``age#sin0``, ``age#cos0`` for embedded ``age``."""
        parts = {j: self._parts(names[j], w) for j, w in zip(self.inputs, self.widths(),
                                                                  strict=True)}
        return [n for j, name in enumerate(names) for n in parts.get(j, [name])]

    def _parts(self, name: str, width: int) -> list[str]:
        if self.kind == "piecewise_linear":
            return [f"{name}#bin{t}" for t in range(width)]
        k = (width - 1) // 2
        return [name] + [f"{name}#{f}{i}" for f in ("sin", "cos") for i in range(k)]

    def gather_index(self) -> torch.Tensor:
        """(out_features,) int64 positions in ``cat([x, block], 1)`` (block: the padded
        (N, E·W) embedding) that make the network's inputs, in order."""
        w = self.params.shape[1] - 1 if self.kind == "piecewise_linear" \
            else 1 + 2 * self.params.shape[1]
        starts = {j: self.in_features + e * w for e, j in enumerate(self.inputs)}
        sizes = dict(zip(self.inputs, self.widths(), strict=True))
        order: list[int] = []
        for j in range(self.in_features):
            order += range(starts[j], starts[j] + sizes[j]) if j in starts else [j]
        return torch.tensor(order, dtype=torch.int64)

    # ------------------------------------------------------------------ applying

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Embed normalized inputs ``x`` (N, in_features); a new (N, out_features) tensor."""
        if x.shape[-1] != self.in_features:
            raise DataError(f"the numerical embedding expects {self.in_features} inputs, "
                            f"data has {x.shape[-1]}")
        with torch.no_grad():
            return self.module().to(x.device)(x)

    def module(self) -> EmbeddingModule:
        """The embedding as a torch module (serving and export)."""
        return EmbeddingModule(self)

    # ------------------------------------------------------------------ storing

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: kind, in_features, inputs, and edges + bins (PLE) or frequencies."""
        d: dict[str, Any] = {"kind": self.kind, "in_features": self.in_features,
                             "inputs": list(self.inputs)}
        if self.kind == "piecewise_linear":
            rows = self.params.tolist()
            return d | {"edges": [r[:b + 1] for r, b in zip(rows, self.bins, strict=True)]}
        return d | {"frequencies": self.params.tolist()}

    @classmethod
    def from_json(cls, d: Any) -> NumEmbedding:
        """Rebuild from `to_json` output; DataError naming what is not well formed."""
        if not isinstance(d, dict) or d.get("kind") not in NUM_EMBEDDINGS[1:]:
            raise DataError(f"embedding must be an object whose kind is one of "
                            f"{', '.join(NUM_EMBEDDINGS[1:])} (got {str(d)[:80]})")
        n, inputs = d.get("in_features"), d.get("inputs")
        if type(n) is not int or n < 1 or not isinstance(inputs, list) or not all(
                type(j) is int for j in inputs) or inputs != sorted(set(inputs)) or (
                inputs and not 0 <= inputs[0] <= inputs[-1] < n):
            raise DataError("embedding in_features must be a positive integer and inputs "
                            "increasing positions below it")
        rows = d.get("edges" if d["kind"] == "piecewise_linear" else "frequencies")
        if not isinstance(rows, list) or len(rows) != len(inputs) or not all(
                isinstance(r, list) and r and all(_finite(v) for v in r) for r in rows):
            raise DataError(f"embedding of kind {d['kind']} needs one list of finite numbers "
                            f"per embedded input")
        if d["kind"] == "periodic":
            if len({len(r) for r in rows}) > 1:
                raise DataError("embedding frequencies must have one length for every input")
            params = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), -1)
            return cls("periodic", n, inputs, params, [])
        if any(len(r) < 2 or any(b <= a for a, b in zip(r, r[1:], strict=False)) for r in rows):
            raise DataError("embedding edges must be at least two increasing numbers per input")
        edges = [torch.tensor(r, dtype=torch.float32) for r in rows]
        return cls("piecewise_linear", n, inputs, **_padded(edges))


def _finite(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _padded(edges: list[torch.Tensor]) -> dict[str, Any]:
    width = max((len(e) for e in edges), default=2)
    params = torch.stack([torch.cat([e, e[-1:].expand(width - len(e))]) for e in edges]) \
        if edges else torch.zeros(0, width)
    return {"params": params, "bins": [len(e) - 1 for e in edges]}


def _edges(v: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin edges (T+1,) float32, strictly increasing: the distinct training values `v` (N,)
    when there are at most ``n_bins + 1`` of them, else the quantiles 0, 1/n, ..., 1 (ties
    merged); a constant column gets one bin [v, v + 1]."""
    distinct = torch.unique(v)  # sorted
    if len(distinct) <= n_bins + 1:
        edges = distinct
    else:
        q = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        edges = torch.unique(torch.quantile(v.double(), q).float())
    if len(edges) < 2:
        edges = torch.cat([edges, edges + 1])
    return edges


class EmbeddingModule(nn.Module):
    """`NumEmbedding` as a module: (N, in_features) → (N, out_features), with only
    elementwise ops, Max/Min, sin/cos and one gather (ONNX exports it as it is)."""

    def __init__(self, emb: NumEmbedding):
        super().__init__()
        self.periodic = emb.kind == "periodic"
        p = emb.params
        self.register_buffer("inputs", torch.tensor(emb.inputs, dtype=torch.int64))  # (E,)
        self.register_buffer("order", emb.gather_index())  # (out_features,)
        if self.periodic:
            self.register_buffer("freq", (2 * math.pi * p.double()).float())  # (E, k)
            return
        bins = torch.tensor(emb.bins, dtype=torch.int64).reshape(-1, 1)  # (E, 1)
        t = torch.arange(p.shape[1] - 1).reshape(1, -1)  # (1, T)
        width = p[:, 1:] - p[:, :-1]  # (E, T); 0 in the padding: made 1 (dropped later)
        self.register_buffer("left", p[:, :-1].clone())
        self.register_buffer("width", torch.where(width > 0, width, torch.ones_like(width)))
        inf = torch.full(width.shape, math.inf)
        self.register_buffer("lower", torch.where(t == 0, -inf, torch.zeros_like(inf)))
        self.register_buffer("upper", torch.where(t == bins - 1, inf, torch.ones_like(inf)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (no class-level annotations for the buffers: mypy reads them as Tensor | Module)
        b: dict[str, torch.Tensor] = dict(self.named_buffers())
        v = torch.index_select(x, 1, b["inputs"]).unsqueeze(-1)  # (N, E, 1)
        if self.periodic:
            a = v * b["freq"]  # (N, E, k)
            block = torch.cat([v, torch.sin(a), torch.cos(a)], dim=-1)  # (N, E, 1 + 2k)
        else:
            z = (v - b["left"]) / b["width"]  # (N, E, T)
            block = torch.minimum(torch.maximum(z, b["lower"]), b["upper"])
        flat = block.flatten(start_dim=1)  # (N, E·W); also for N = 0 (an empty split)
        return torch.index_select(torch.cat([x, flat], dim=1), 1, b["order"])


def numeric_inputs(columns: list[Column]) -> list[int]:
    """Positions of the numeric columns' value inputs among the model inputs (`Column`s in
    order; an indicator input follows its column's value and is not embedded)."""
    out, j = [], 0
    for col in columns:
        if col.kind == "numeric":
            out.append(j)
        j += len(col.input_names())
    return out

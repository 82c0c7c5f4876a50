"""K ≥ 1 MLPs of one layout trained in lock-step.

Parameters are stacked along a leading member axis (K, ...); the forward pass is a chain of
batched matrix products; the member-specific hyperparameters are (K,) columns of the member
table (engine/train/state.py). Member k is initialized exactly like `build_mlp` under
`torch.manual_seed(seed_k)`, and converts to and from that plain `nn.Sequential`'s state dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.model import build_mlp, linear_indices
from fcnet_cli.engine.train.kernels import ACTIVATIONS, affine, dropout_mask_
from fcnet_cli.events import SPARSE_BELOW

__all__ = ["SEED_MIX", "Population", "derive_seed"]

BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # nn.BatchNorm1d defaults
SEED_MIX = (1_000_003, 7_919, 104_729)  # primes that keep derived seeds apart


def derive_seed(seed: int, stream: int) -> int:
    """Independent seeds for the data-order (stream 1) and dropout (stream 2) generators."""
    a, b, _ = SEED_MIX
    return (seed * a + stream * b) % (2**63 - 1)


class Population:
    """Stacked parameters of K members sharing (in_features, hidden, n_classes, batch_norm).

    All parameters live in one member-major buffer `flat` (K, P) (P = parameters per member),
    and all gradients in `grad` (K, P): `params[i]` and `grads[i]` are views into them, so the
    optimizer updates every layer of every member in a few whole-buffer operations.
    `autograd=True` makes the parameter views autograd leaves; the hand-written backward
    (engine/train/steps.py) works on plain tensors.
    """

    def __init__(self, exps: Sequence[Experiment], in_features: int, n_classes: int,
                 device: torch.device, *, autograd: bool = True):
        cfg = exps[0].model
        self.hidden = list(cfg.hidden)
        self.activation = cfg.activation
        self.batch_norm = cfg.batch_norm
        self.include_bias = exps[0].regularization.include_bias  # part of the layout
        self.in_features, self.n_classes = in_features, n_classes
        self.device = device
        self.autograd = autograd
        self.lin_idx = linear_indices(self.hidden, batch_norm=self.batch_norm)
        states = []
        for e in exps:
            torch.manual_seed(e.training.seed)  # nn.Linear init from the member's seed
            states.append(build_mlp(e.model, in_features, n_classes).state_dict())
        self.load_state_dicts(states)

    # ------------------------------------------------------------------ state conversion

    def _keys(self) -> list[tuple[str, str]]:
        """(state-dict key, attribute role) in parameter order."""
        keys = []
        for j, i in enumerate(self.lin_idx):
            keys += [(f"{i}.weight", "param"), (f"{i}.bias", "param")]
            if self.batch_norm and j < len(self.hidden):
                keys += [(f"{i + 1}.weight", "param"), (f"{i + 1}.bias", "param"),
                         (f"{i + 1}.running_mean", "buffer"), (f"{i + 1}.running_var", "buffer"),
                         (f"{i + 1}.num_batches_tracked", "buffer")]
        return keys

    def load_state_dicts(self, states: Sequence[dict[str, torch.Tensor]]) -> None:
        """Stack K plain `nn.Sequential` state dicts into the population."""
        tensors: list[torch.Tensor] = []
        self.buffers: dict[str, torch.Tensor] = {}
        self.param_keys: list[str] = []
        for key, role in self._keys():
            # nn.Linear's layouts: weights (K, out, in), the layout oneDNN's products read
            t = torch.stack([s[key].detach() for s in states]).to(self.device)
            if role == "param":
                tensors.append(t)
                self.param_keys.append(key)
            else:
                self.buffers[key] = t.clone()
        self.K = len(states)
        self.shapes = [tuple(t.shape[1:]) for t in tensors]
        self.flat = torch.cat([t.reshape(self.K, -1) for t in tensors], 1)  # (K, P)
        self.grad = torch.zeros_like(self.flat)
        self._pos = {k: i for i, k in enumerate(self.param_keys)}
        self._bind()

    def _bind(self) -> None:
        self.params = self.views(self.flat)
        self.grads = self.views(self.grad)
        if self.autograd:
            for p in self.params:  # views of a plain buffer: leaves of their own
                p.requires_grad_(True)

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views (K, *shape) of a (K, P) member-major buffer."""
        out, start = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            out.append(flat[:, start:start + n].view(flat.shape[0], *shape))
            start += n
        return out

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k as a plain `nn.Sequential` state dict (CPU tensors)."""
        out = {key: p[k].detach().cpu().clone()
               for key, p in zip(self.param_keys, self.params, strict=True)}
        out.update({key: b[k].cpu().clone() for key, b in self.buffers.items()})
        return out

    def decay_mask(self) -> torch.Tensor:
        """(1, P): 1 where weight decay and penalties apply (Linear weights, and biases when
        the layout's include_bias says so), 0 elsewhere (batch-norm parameters never)."""
        lin = {f"{i}.weight" for i in self.lin_idx}
        bias = {f"{i}.bias" for i in self.lin_idx}
        mask = torch.zeros(1, self.flat.shape[1], device=self.device)
        for key, v in zip(self.param_keys, self.views(mask), strict=True):
            if key in lin or (self.include_bias and key in bias):
                v.fill_(1.0)
        return mask

    def take(self, keep: torch.Tensor) -> None:
        """Keep members `keep` (index tensor) with their gradients (`PopulationState.compact`
        calls this with every other per-member structure)."""
        self.flat, self.grad = self.flat[keep], self.grad[keep]
        self.buffers = {k: b[keep].clone() for k, b in self.buffers.items()}
        self.K = len(keep)
        self._bind()

    # ------------------------------------------------------------------ forward

    def linears(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight (K, out, in), bias (K, out)) of each Linear layer (nn.Linear's layout)."""
        pos = self._pos
        return [(self.params[pos[f"{i}.weight"]], self.params[pos[f"{i}.bias"]])
                for i in self.lin_idx]

    def weight_positions(self) -> set[int]:
        """Indices into `params` of the Linear weights."""
        return {self._pos[f"{i}.weight"] for i in self.lin_idx}

    def linear_grads(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The gradients of `linears()`, views into `grad`, in the same layouts."""
        pos = self._pos
        return [(self.grads[pos[f"{i}.weight"]], self.grads[pos[f"{i}.bias"]])
                for i in self.lin_idx]

    def forward(self, x: torch.Tensor, *, train: bool, dropout: Sequence[float] | None = None,
                gens: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """x (K, B, in) -> logits (K, B, n_classes).

        In training mode batch norm uses batch statistics (and updates running ones), and
        dropout draws member k's mask from `gens[k]` with rate `dropout[k]`.
        """
        pos = self._pos
        act = ACTIVATIONS[self.activation].fn
        h = x
        for j, (i, (w, b)) in enumerate(zip(self.lin_idx, self.linears(), strict=True)):
            if self.K == 1:  # one member: nn.Linear's kernel (addmm) on views
                h = affine(b.squeeze(0), h.squeeze(0), w.squeeze(0).t()).unsqueeze(0)
            else:
                h = affine(b.unsqueeze(1), h, w.transpose(1, 2))  # (K,B,in) @ (K,in,out)
            if j == len(self.hidden):
                break
            if self.batch_norm:
                h = self._batch_norm(h, i + 1, pos, train=train)
            h = act(h)
            if train and dropout is not None and gens is not None:
                h = self._dropout(h, dropout, gens)
        return h

    def _batch_norm(self, h: torch.Tensor, i: int, pos: dict[str, int], *,
                    train: bool) -> torch.Tensor:
        gamma = self.params[pos[f"{i}.weight"]].unsqueeze(1)  # (K, 1, width)
        beta = self.params[pos[f"{i}.bias"]].unsqueeze(1)
        rm, rv = self.buffers[f"{i}.running_mean"], self.buffers[f"{i}.running_var"]
        if train:
            mean = h.mean(1)  # (K, width)
            var = h.var(1, unbiased=False)
            with torch.no_grad():
                n = h.shape[1]
                rm.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean.detach())
                rv.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * var.detach() * n / max(n - 1, 1))
                self.buffers[f"{i}.num_batches_tracked"].add_(1)
        else:
            mean, var = rm, rv
        return (h - mean.unsqueeze(1)) * torch.rsqrt(var.unsqueeze(1) + BN_EPS) * gamma + beta

    @staticmethod
    def _dropout(h: torch.Tensor, p: Sequence[float], gens: Sequence[torch.Generator]
                 ) -> torch.Tensor:
        masks = []
        for k, g in enumerate(gens):
            pk = p[k]
            if pk == 0.0:  # no draw at p = 0, like F.dropout
                masks.append(torch.ones_like(h[k]))
            else:
                masks.append(dropout_mask_(torch.empty_like(h[k]), pk, g))
        return h * torch.stack(masks)

    # ------------------------------------------------------------------ penalty and clipping

    def penalized(self) -> list[torch.Tensor]:
        """The (K, ...) parameters the L1/L2 penalty covers: the Linear weights, and their
        biases when the layout's include_bias says so."""
        return [t for w, b in self.linears() for t in ((w, b) if self.include_bias else (w,))]

    @torch.no_grad()
    def clip_grads(self, max_norm: torch.Tensor) -> None:
        """Per-member clip_grad_norm_ over all of a member's parameters (max_norm (K,))."""
        norm = torch.linalg.vector_norm(self.grad, dim=1)  # (K,)
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        self.grad.mul_(coef.unsqueeze(1))

    @torch.no_grad()
    def layer_stats(self) -> list[list[tuple[str, float, float, float]]]:
        """Per member, per Linear: (layer, L2 norm, L1 norm, fraction |w| < SPARSE_BELOW)."""
        cols = []
        for i, (w, _) in zip(self.lin_idx, self.linears(), strict=True):
            flat = w.detach().flatten(1)  # (K, out*in)
            cols.append((str(i), flat.norm(dim=1).tolist(), flat.abs().sum(1).tolist(),
                         (flat.abs() < SPARSE_BELOW).float().mean(1).tolist()))
        return [[(name, l2[k], l1[k], sp[k]) for name, l2, l1, sp in cols]
                for k in range(self.K)]

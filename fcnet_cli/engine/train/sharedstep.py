"""The shared ensemble's step (`model.ensemble_kind: shared`, engine/train/shared.py): its
optimizer, its per-member loss and one update.

    forward    each member's output (K, batch, C) of the batch
    loss       mean over members of each member's loss (+ the penalty the caller adds)
    update     zero_grad → backward → clip (the global gradient norm) → step

torch.optim runs the update: the implementation the population engine (engine/train/optim.py)
is tested against, so the experiment's optimizer means the same in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fcnet_cli.config import Experiment
from fcnet_cli.engine.batchensemble import BatchEnsemble, BatchLinear
from fcnet_cli.engine.data.load import DataSplits
from fcnet_cli.engine.train.losses import MemberLoss, class_weight_table
from fcnet_cli.engine.train.state import MemberTable

__all__ = ["make_optimizer", "shared_loss", "shared_step"]


def make_optimizer(exp: Experiment, net: nn.Module) -> torch.optim.Optimizer:
    """torch.optim's `exp.optimizer` over the trainable parameters of `net`'s BatchLinear
    layers: weight decay on the shared weights (and biases with include_bias), not on r, s."""
    o, with_bias = exp.optimizer, exp.regularization.include_bias
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for layer in net.modules():
        if isinstance(layer, BatchLinear):
            decay.append(layer.weight)
            (decay if with_bias else plain).append(layer.bias)
            plain += [layer.r, layer.s]
    groups: list[dict[str, Any]] = [
        {"params": [p for p in ps if p.requires_grad], "weight_decay": wd}
        for ps, wd in ((decay, o.weight_decay), (plain, 0.0))]
    groups = [g for g in groups if g["params"]]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, dampening=o.dampening,
                               nesterov=o.nesterov)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps)
    return torch.optim.RMSprop(groups, lr=o.lr, alpha=o.alpha, eps=o.eps, momentum=o.momentum)


def shared_loss(exp: Experiment, members: int, data: DataSplits) -> MemberLoss:
    """Each of `members` members' loss (K,) with the experiment's label smoothing, class
    weights and Huber delta (`losses.MemberLoss`); members = 1: the ensemble's own."""
    device = data.x_train.device
    table = MemberTable.of([exp] * members, device)
    weights = None if data.task == "regression" else class_weight_table(
        [exp] * members, data.y_train, data.n_classes, device)
    smoothing = table.label_smoothing if table.on("label_smoothing") else None
    return MemberLoss(exp.loss_name, smoothing, weights, table.huber_delta)


def shared_step(net: BatchEnsemble, opt: torch.optim.Optimizer, loss_fn: MemberLoss,
                xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator | None = None, *,
                extra: Callable[[], torch.Tensor] | None = None, clip: float | None = None,
                bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One update of `net` on a batch xb (B, F), yb (B[, T]): forward → loss = mean over
    members of each member's loss (+ `extra()`, the penalty) → zero_grad → backward → clip
    (the global gradient norm) → step. Returns (the members' outputs (K, B, C), the mean
    member loss (a 0-d tensor: no host read)), or None when the objective is not finite
    (nothing updated)."""
    net.train()
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=bf16):
        z = net.members_forward(xb, gen)  # (K, B, C)
    z = z.float()
    loss = loss_fn(z, yb.expand(net.k, *yb.shape)).mean()
    objective = loss if extra is None else loss + extra()
    if not math.isfinite(float(objective.detach())):  # one host read per step
        return None
    opt.zero_grad(set_to_none=True)
    objective.backward()
    if clip is not None:
        nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()
    return z.detach(), loss.detach()

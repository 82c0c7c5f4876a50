"""How much memory a population will need, checked before anything is allocated.

A width typo (`model.hidden: [1000000000]`) would otherwise spend seconds and many GB before
the allocator fails with a raw message. The estimate counts float32 values per member:

    parameters P = Σ (in·out + out) over the Linear layers (+ 4·width per batch-norm layer)
    resident     = P · (weights + gradients + best copy + optimizer state per parameter
                        + the penalty's scratch buffer when L1/L2 is on)
    activations  = max(training: batch · (Σ widths · (3 + 2 with dropout) + classes)
                         (pre-activation, output, gradient; dropout's mask and masked output;
                          the log-softmax),
                       evaluation: eval rows · 2 · widest layer)
    total        = members · (resident + activations + batch · in_features)
                   + saving (one member at a time: its weights and optimizer state are
                     copied to the CPU and serialized, ≈ 2 copies each)

It is a lower bound of the real peak (allocator slack, temporaries), so it refuses only what
cannot fit; the limit is `training.max_memory` (GiB) or the device's free memory. Measured on
digits with Adam (peak RSS growth / estimate): 1.55 for [2048, 2048], 1.21 for 8 members of
[1024, 1024], 1.34 for 64 members of [256, 128].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from fcnet_cli.config import Experiment
from fcnet_cli.errors import UsageError

__all__ = ["check_memory", "estimate_bytes", "free_bytes", "parameter_count"]

FLOAT_BYTES = 4
GIB = 1 << 30


def parameter_count(exp: Experiment, n_features: int, n_classes: int) -> int:
    """Trainable values of one member (Linear weights and biases, batch-norm scale/shift)."""
    widths = [n_features, *exp.model.hidden, n_classes]
    count = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
    if exp.model.batch_norm:
        count += 4 * sum(exp.model.hidden)  # weight, bias, running mean, running var
    return count


def _optimizer_slots(exp: Experiment) -> int:
    """Per-parameter state tensors of the optimizer (torch.optim semantics)."""
    opt = exp.optimizer
    if opt.name in ("adam", "adamw"):
        return 2  # exp_avg, exp_avg_sq
    if opt.name == "rmsprop":
        return 1 + (opt.momentum > 0)  # square_avg (+ momentum_buffer)
    return int(opt.momentum > 0)  # sgd: momentum_buffer


def estimate_bytes(exp: Experiment, n_features: int, n_classes: int, eval_rows: int) -> int:
    """Estimated bytes one member needs while training (see the module docstring)."""
    params = parameter_count(exp, n_features, n_classes)
    scratch = exp.regularization.type != "none"  # the explicit step's sign(w) buffer
    # weights, gradients, best copy, optimizer state (+ scratch)
    resident = params * (3 + _optimizer_slots(exp) + scratch)
    widths = [*exp.model.hidden, n_classes]
    batch = exp.training.batch_size
    per_width = 3 + 2 * (exp.model.dropout > 0)
    activations = max(batch * (sum(widths) * per_width + n_classes),
                      eval_rows * 2 * max(widths))
    return FLOAT_BYTES * (resident + activations + batch * n_features)


def free_bytes(device: torch.device) -> int | None:
    """Memory available to a new allocation on `device` (None when it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:  # MemAvailable counts reclaimable page cache, unlike sysconf's free pages
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n: float) -> str:
    return f"{n / GIB:,.2f} GiB"


def check_memory(exps: Sequence[Experiment], n_features: int, n_classes: int, eval_rows: int,
                 device: torch.device) -> int:
    """Refuse (UsageError, exit 2) a population whose estimate exceeds the limit; return it.

    The limit is the smallest `training.max_memory` among the members, else the free memory
    of `device` (no limit when neither is known).
    """
    total = sum(estimate_bytes(e, n_features, n_classes, eval_rows) for e in exps)
    total += max(FLOAT_BYTES * 2 * (1 + _optimizer_slots(e)) * parameter_count(
        e, n_features, n_classes) for e in exps)  # a checkpoint being written
    caps = [e.training.max_memory for e in exps if e.training.max_memory is not None]
    if caps:
        limit, what = int(min(caps) * GIB), "training.max_memory"
    else:
        free = free_bytes(device)
        if free is None:
            return total
        limit, what = free, f"free memory on {device.type}"
    if total > limit:
        params = sum(parameter_count(e, n_features, n_classes) for e in exps)
        raise UsageError(
            f"the network needs an estimated {_gib(total)} to train ({len(exps)} member(s), "
            f"{params:,} parameters with gradients, optimizer state and activations), more "
            f"than the {_gib(limit)} of {what}; make model.hidden or training.batch_size "
            "smaller, or raise training.max_memory")
    return total

"""The memory estimate checked before a population is allocated (engine/train/memory.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fcnet_cli.config import Experiment
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.train.memory import check_memory, estimate_bytes, free_bytes, parameter_count
from fcnet_cli.errors import UsageError


def exp(**over: Any) -> Experiment:
    raw: dict[str, Any] = {"model": {"hidden": [32, 16]},
                           "optimizer": {"name": "sgd", "momentum": 0.9},
                           "training": {"batch_size": 10, "device": "cpu"}}
    for k, v in over.items():
        raw[k] = {**raw.get(k, {}), **v}
    return Experiment.model_validate(raw)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameter_count_matches_the_model(batch_norm: bool) -> None:
    e = exp(model={"batch_norm": batch_norm})
    model = build_mlp(e.model, 8, 3)
    values = sum(t.numel() for k, t in model.state_dict().items()
                 if not k.endswith("num_batches_tracked"))
    assert parameter_count(e, 8, 3) == values


def test_estimate_by_hand() -> None:
    # P = 8·32+32 + 32·16+16 + 16·3+3 = 867; sgd with momentum: weights, grads, best, buffer
    # activations: max(10 · (32+16+3) · 3, 100 · 2 · 32) = 6400; input batch 10 · 8
    assert estimate_bytes(exp(), 8, 3, eval_rows=100) == 4 * (867 * 4 + 6400 + 80)
    adam = estimate_bytes(exp(optimizer={"name": "adam", "momentum": 0.0}), 8, 3, 100)
    assert adam == 4 * (867 * 5 + 6400 + 80)
    # batch 200 with dropout and L2: training activations 200 · ((32+16+3) · 5 + 3) = 51600
    # exceed evaluation's 6400, and the penalty's scratch buffer adds P
    big = exp(model={"dropout": 0.5}, regularization={"type": "l2", "strength": 1e-3},
              training={"batch_size": 200})
    assert estimate_bytes(big, 8, 3, 100) == 4 * (867 * 5 + 51600 + 200 * 8)


def test_limit_is_max_memory_then_free_memory() -> None:
    cpu = torch.device("cpu")
    need = estimate_bytes(exp(), 8, 3, 100) + 4 * 2 * 2 * 867  # + saving: weights, momentum
    roomy = exp(training={"max_memory": 2 * need / 2**30})
    assert check_memory([roomy], 8, 3, 100, cpu) == need
    tight = exp(training={"max_memory": need / 2 / 2**30})
    with pytest.raises(UsageError, match=r"needs an estimated 0\.00 GiB .*training\.max_memory"):
        check_memory([tight], 8, 3, 100, cpu)
    with pytest.raises(UsageError, match=r"\(2 member\(s\), 1,734 parameters"):
        check_memory([tight, tight], 8, 3, 100, cpu)
    free = free_bytes(cpu)
    assert free is not None and free > 0
    with pytest.raises(UsageError, match="free memory on cpu"):
        check_memory([exp(model={"hidden": [2**31 - 1]})], 784, 10, 100, cpu)

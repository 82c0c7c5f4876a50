"""The hyperparameter distribution of a selected ensemble's members (`model.ensemble:
{size: K, select: greedy}`). Torch-free.

Member 0 is the experiment as resolved (the default rule applied). Member k ≥ 1 trains with
seed `training.seed + k` and draws, from a generator seeded by (training.seed, k) alone (so
growing `size` keeps the first members' draws):

- ``optimizer.lr``: log-uniform in [lr / 3, 3 · lr] around the experiment's lr;
- ``optimizer.weight_decay``: 0 with probability 1/2, else log-uniform in [1e-5, 1e-2]
  (adamw, whose decay is multiplied by the lr: [1e-4, 1e-1]);
- ``model.dropout``: uniform in [0, 0.3];
- ``loss.label_smoothing`` (classification): uniform in [0, 0.2];
- ``model.hidden``: every width times one of 1/2, 1, 2 (at least 1); the depth is the
  experiment's.

Everything else (optimizer, schedule, batch size, epochs, early stopping) is the experiment's.
Members of one width share a layout and train as one population.
"""

from __future__ import annotations

import math
import random

from fcnet_cli.config import Experiment

__all__ = ["DROPOUT", "LABEL_SMOOTHING", "LR_FACTOR", "WIDTH_FACTORS", "draw_member",
           "draw_members"]

LR_FACTOR = 3.0  # lr drawn log-uniformly within this factor of the experiment's
WEIGHT_DECAY = {"adamw": (1e-4, 1e-1)}  # decoupled: multiplied by the lr
WEIGHT_DECAY_COUPLED = (1e-5, 1e-2)  # sgd, adam, rmsprop: added to the gradient
DROPOUT = (0.0, 0.3)
LABEL_SMOOTHING = (0.0, 0.2)
WIDTH_FACTORS = (0.5, 1.0, 2.0)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _round(x: float) -> float:
    """4 significant digits: the config.yaml of a member stays readable."""
    return float(f"{x:.4g}")


def draw_member(exp: Experiment, k: int) -> Experiment:
    """Member k of `exp`'s population: seed `training.seed + k`, `model.ensemble: 1`, and for
    k ≥ 1 the hyperparameters drawn as the module says."""
    t, m, o = exp.training, exp.model, exp.optimizer
    model = m.model_copy(update={"ensemble": 1})
    training = t.model_copy(update={"seed": t.seed + k})
    if k == 0:
        return exp.model_copy(update={"model": model, "training": training})
    rng = random.Random(f"fcnet-ensemble:{t.seed}:{k}")  # str seeds are stable across runs
    lr = _round(_log_uniform(rng, o.lr / LR_FACTOR, o.lr * LR_FACTOR))
    low, high = WEIGHT_DECAY.get(o.name, WEIGHT_DECAY_COUPLED)
    decay = _round(_log_uniform(rng, low, high)) if rng.random() < 0.5 else 0.0
    dropout = _round(rng.uniform(*DROPOUT))
    smoothing = _round(rng.uniform(*LABEL_SMOOTHING))
    factor = rng.choice(WIDTH_FACTORS)
    hidden = [max(1, round(h * factor)) for h in m.hidden]
    update = {"model": model.model_copy(update={"dropout": dropout, "hidden": hidden}),
              "training": training,
              "optimizer": o.model_copy(update={"lr": lr, "weight_decay": decay})}
    if exp.resolved_task == "classification":
        update["loss"] = exp.loss.model_copy(update={"label_smoothing": smoothing})
    return exp.model_copy(update=update)


def draw_members(exp: Experiment) -> list[Experiment]:
    """The `model.ensemble.size` members of a selected ensemble, in member order."""
    return [draw_member(exp, k) for k in range(exp.model.ensemble_size)]

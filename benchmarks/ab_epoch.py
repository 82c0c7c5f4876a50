"""Interleaved timing of one epoch: fcnet's engine (K = 1) vs a hand-written PyTorch loop and
scikit-learn's MLPClassifier (one partial_fit = one epoch).

    .venv/bin/python benchmarks/ab_epoch.py [--rounds 5] [--data bench-data/mnist-60000]

Alternating the two in one process cancels most of a shared machine's drift; prints the median
epoch time of each and their ratio (JSON). Data: the MNIST-format set `bench.py` generates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data import DataSplits, load_data
from fcnet_cli.engine.train import train_population


def hand_epoch(d: DataSplits, model: nn.Sequential, opt: torch.optim.Optimizer) -> float:
    t0 = time.perf_counter()
    n = len(d.y_train)
    perm = torch.randperm(n)
    for i in range(0, n, 128):
        idx = perm[i:i + 128]
        loss = F.cross_entropy(model(d.x_train[idx]), d.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model(d.x_val)
    return time.perf_counter() - t0


def sklearn_epoch(d: DataSplits, clf: object) -> float:
    x, y = d.x_train.numpy(), d.y_train.numpy()
    t0 = time.perf_counter()
    clf.partial_fit(x, y, classes=list(range(10)))  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", default="bench-data/mnist-60000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        exp = Experiment.model_validate({
            "data": {"dataset": "mnist", "root": args.data, "val_fraction": 0.0834},
            "model": {"hidden": [256, 128]},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "training": {"epochs": 2, "batch_size": 128, "device": "cpu"},
            "output": {"dir": out, "name": "ab"}})
        d = load_data(exp.data)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                              nn.Linear(128, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd", batch_size=128,
                            momentum=0.9, nesterovs_momentum=False, learning_rate_init=0.05,
                            alpha=0.0, shuffle=True, random_state=0)
        sklearn_epoch(d, clf)  # warm-up
        fc, hand, sk = [], [], []
        for _ in range(args.rounds):
            sk.append(sklearn_epoch(d, clf))
            r = train_population([exp], data=d)[0]
            fc += [m.seconds for m in r.history[1:]]  # the first epoch warms up
            hand_epoch(d, model, opt)
            hand.append(hand_epoch(d, model, opt))
        med = {k: statistics.median(v) for k, v in (("fc", fc), ("hand", hand), ("sk", sk))}
        print(json.dumps({"fcnet_epoch_s": round(statistics.median(fc), 3),
                          "hand_epoch_s": round(statistics.median(hand), 3),
                          "sklearn_epoch_s": round(statistics.median(sk), 3),
                          "fcnet_vs_hand": round(med["fc"] / med["hand"], 3),
                          "fcnet_vs_sklearn": round(med["fc"] / med["sk"], 3),
                          "rounds": args.rounds}))


if __name__ == "__main__":
    main()

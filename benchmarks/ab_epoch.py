"""Interleaved epoch timing: fcnet (K = 1, both engines), a hand-written PyTorch loop,
scikit-learn's MLPClassifier, a population of K configurations, and the compute limit.

    .venv/bin/python benchmarks/ab_epoch.py [--rounds 5] [--k 16] [--threads N]
                                            [--data-dir bench-data]

Every round runs each method once, in one process, and measures the dense-matmul rate again,
so a shared machine's drift hits all of them alike; the output (one JSON object) gives the
median of every time and ratio over the rounds and its spread (min, max), by wall clock and,
with `--threads 1`, by CPU time (which waiting for a busy core does not inflate).
Layout: 784 → 256 → 128 → 10 (ReLU), batch 128, SGD momentum 0.9, on the MNIST-format data
`bench.py` generates.
Times cover the training batches of an epoch (no validation pass) after a warm-up epoch.
The compute limit of an epoch is FLOPS_PER_SAMPLE × n_train ÷ the fp32 2048² matmul rate
(`torch.mm`); the strict limit divides by the faster of that and oneDNN's 2048² fp32 rate,
which on CPUs where torch's BLAS runs an AVX2 kernel is about twice torch.mm's.
`fcnet_aten_s` is fcnet with oneDNN's products turned off (ATen's only), for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from make_mnist import make as make_mnist
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.train import steps as backprop
from fcnet_cli.engine.train.loop import train_population
from fcnet_cli.events import BatchProgress, Callback, EpochMetrics

IN, HIDDEN, CLASSES, BATCH = 784, [256, 128], 10, 128
# multiply-adds of one forward pass per sample; forward + backward ≈ 3 × forward, 2 FLOPs per MAC
FLOPS_PER_SAMPLE = 6 * (IN * 256 + 256 * 128 + 128 * CLASSES)
TARGETS = {"fcnet_vs_hand": 0.8, "fcnet_vs_sklearn": 0.75, "fcnet_x_compute_limit": 1.2,
           "population_per_config_x_compute_limit": 1.1}


def experiment(root: Path, out: str, engine: str = "auto", seed: int = 0, lr: float = 0.05,
               momentum: float = 0.9, name: str = "ab") -> Experiment:
    return Experiment.model_validate({
        "data": {"dataset": "mnist", "root": str(root), "val_fraction": 1 / 12},
        "model": {"hidden": HIDDEN},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": momentum},
        "training": {"epochs": 2, "batch_size": BATCH, "seed": seed, "device": "cpu",
                     "engine": engine},
        "output": {"dir": out, "name": name}})


class Clock:
    """Wall-clock and CPU seconds of this process between start() and stop().

    CPU time is the steadier measure on a machine other processes share (time spent waiting
    for a core does not count); with one thread it is the work done."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def matmul_rate(n: int = 2048, reps: int = 3, onednn: bool = False) -> tuple[float, float]:
    """fp32 FLOP/s of one n×n matmul (wall, CPU), medians of `reps` after a warm-up: torch.mm,
    or oneDNN's matmul (nan where this torch has none)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    dnn = backprop.onednn_linear()
    if onednn and dnn is None:
        return math.nan, math.nan
    clock, times = Clock(), []
    for _ in range(reps + 1):
        clock.start()
        dnn(a, b, None) if onednn and dnn is not None else torch.mm(a, b)
        times.append(clock.stop())
    return (2 * n**3 / statistics.median(t[0] for t in times[1:]),
            2 * n**3 / statistics.median(t[1] for t in times[1:]))


def hand_epoch(d: DataSplits, model: nn.Sequential, opt: torch.optim.Optimizer
               ) -> tuple[float, float]:
    """The plain PyTorch loop over in-memory tensors; seconds of its training batches."""
    clock = Clock()
    clock.start()
    n = len(d.y_train)
    perm = torch.randperm(n)
    for i in range(0, n, BATCH):
        idx = perm[i:i + BATCH]
        loss = F.cross_entropy(model(d.x_train[idx]), d.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clock.stop()


def sklearn_epoch(d: DataSplits, clf: Any) -> tuple[float, float]:
    x, y = d.x_train.numpy(), d.y_train.numpy()
    clock = Clock()
    clock.start()
    clf.partial_fit(x, y, classes=list(range(CLASSES)))
    return clock.stop()


class LastEpoch(Callback):
    """Times the last epoch: from the end of the one before to the last batch's end."""

    def __init__(self, epochs: int, batches: int):
        self.epochs, self.batches, self.clock = epochs, batches, Clock()
        self.seconds = (math.nan, math.nan)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if metrics[0].epoch == self.epochs - 1:
            self.clock.start()

    def on_batch_end(self, progress: BatchProgress) -> None:
        if (progress.epoch, progress.batch) == (self.epochs, self.batches):
            self.seconds = self.clock.stop()


def fcnet_epoch(exps: list[Experiment], d: DataSplits) -> tuple[float, float]:
    """Seconds of the second (timed) epoch of a population; the first warms up."""
    timer = LastEpoch(exps[0].training.epochs, math.ceil(len(d.y_train) / BATCH))
    train_population(exps, data=d, callbacks=[timer])
    return timer.seconds


def fcnet_aten_epoch(exps: list[Experiment], d: DataSplits) -> tuple[float, float]:
    """fcnet_epoch with every product on ATen's kernels (oneDNN off)."""
    saved, backprop.ONEDNN_MIN = backprop.ONEDNN_MIN, 2**62
    try:
        return fcnet_epoch(exps, d)
    finally:
        backprop.ONEDNN_MIN = saved


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--k", type=int, default=16, help="population size (0 = skip)")
    ap.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    ap.add_argument("--threads", type=int, help="torch and BLAS threads for every method "
                                                 "(default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)  # numpy's BLAS, which scikit-learn uses
    root = make_mnist(args.data_dir / "mnist-60000", 60000, 10000)
    from sklearn.neural_network import MLPClassifier

    with tempfile.TemporaryDirectory() as out:
        single = [experiment(root, out)]
        reference = [experiment(root, out, engine="autograd", name="ref")]
        lrs = [0.01 * 8 ** (k / max(args.k - 1, 1)) for k in range(args.k)]  # 0.01 … 0.08
        pop = [experiment(root, out, seed=k, lr=lrs[k], momentum=(0.5, 0.7, 0.8, 0.9)[k % 4],
                          name=f"pop{k:02d}") for k in range(args.k)]
        d = load_data(single[0].data)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(IN, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                              nn.Linear(128, CLASSES))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        clf = MLPClassifier(hidden_layer_sizes=tuple(HIDDEN), solver="sgd", batch_size=BATCH,
                            momentum=0.9, nesterovs_momentum=False, learning_rate_init=0.05,
                            alpha=0.0, shuffle=True, random_state=0)
        sklearn_epoch(d, clf)  # warm-up
        hand_epoch(d, model, opt)
        rows: list[dict[str, tuple[float, float]]] = []
        for _ in range(args.rounds):
            flops = FLOPS_PER_SAMPLE * len(d.y_train)
            rate, dnn = matmul_rate(), matmul_rate(onednn=True)
            r = {"bound_s": (flops / rate[0], flops / rate[1]),
                 "strict_bound_s": (flops / max(rate[0], dnn[0]),
                                    flops / max(rate[1], dnn[1])),
                 "sklearn_s": sklearn_epoch(d, clf), "fcnet_s": fcnet_epoch(single, d),
                 "hand_s": hand_epoch(d, model, opt),
                 "fcnet_autograd_s": fcnet_epoch(reference, d),
                 "fcnet_aten_s": fcnet_aten_epoch(single, d)}
            if args.k:
                wall, cpu = fcnet_epoch(pop, d)
                r["population_per_config_s"] = (wall / args.k, cpu / args.k)
                wall, cpu = fcnet_aten_epoch(pop, d)
                r["population_aten_per_config_s"] = (wall / args.k, cpu / args.k)
            rows.append(r)
    report(rows, args, len(d.y_train))


def report(rows: list[dict[str, tuple[float, float]]], args: argparse.Namespace,
           n_train: int) -> None:
    """Medians and spreads of the times and of each round's ratios, against the targets:
    by wall clock, and by CPU time when every method ran on one thread."""
    ratios = {"fcnet_vs_hand": ("fcnet_s", "hand_s"),
              "fcnet_vs_sklearn": ("fcnet_s", "sklearn_s"),
              "fcnet_x_compute_limit": ("fcnet_s", "bound_s"),
              "fcnet_autograd_vs_hand": ("fcnet_autograd_s", "hand_s"),
              "fcnet_vs_fcnet_autograd": ("fcnet_s", "fcnet_autograd_s"),
              "fcnet_vs_fcnet_aten": ("fcnet_s", "fcnet_aten_s"),
              "fcnet_x_strict_limit": ("fcnet_s", "strict_bound_s"),
              "population_per_config_x_strict_limit": ("population_per_config_s",
                                                       "strict_bound_s"),
              "population_vs_population_aten": ("population_per_config_s",
                                                 "population_aten_per_config_s"),
              "population_per_config_x_compute_limit": ("population_per_config_s", "bound_s")}
    out: dict[str, Any] = {"rounds": args.rounds, "k": args.k, "n_train": n_train,
                           "threads": torch.get_num_threads(), "torch": torch.__version__}
    for i, clock in enumerate(("wall", "cpu")):
        if clock == "cpu" and torch.get_num_threads() != 1:
            continue  # CPU time of several threads counts their spinning too
        part: dict[str, Any] = {"seconds": {k: spread([r[k][i] for r in rows]) for k in rows[0]}}
        for name, (num, den) in ratios.items():
            if num in rows[0]:
                part[name] = spread([r[num][i] / r[den][i] for r in rows])
                if name in TARGETS:
                    part[name]["target"] = TARGETS[name]
                    part[name]["met"] = part[name]["median"] <= TARGETS[name]
        out[clock] = part
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

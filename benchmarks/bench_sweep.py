"""A sweep trained as one population vs the same configurations as sequential `fcnet train` runs.

    .venv/bin/python benchmarks/bench_sweep.py                        # 16 configs, 60000×784, CPU
    .venv/bin/python benchmarks/bench_sweep.py --data digits --epochs 5
    .venv/bin/python benchmarks/bench_sweep.py --device cuda --configs 256 --sample 8

Both sides train the same configurations (one layout: 784 → 256 → 128 → 10, batch 128, SGD;
learning rates log-spaced over [1e-3, 1e-1], momentum 0.9) for the same epochs on the same
data. The sweep side is `run_sweep` end to end (Optuna journal, leaderboard, checkpoints); the
sequential side calls `train()` once per configuration, exactly what `fcnet train` runs (the
data loaded by each run, process start-up not counted; one untimed warm-up load first).
`--sample k` times only k sequential runs and scales to all configurations (for large GPU
populations). The 60000×784 data set is
synthetic, in MNIST's raw format (make_mnist.py), read through fcnet's `mnist` loader.
Prints one JSON object per line; the last is the summary (CPU target: ratio ≤ 0.6).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from make_mnist import make as make_mnist

from fcnet_cli.engine.data.load import load_data
from fcnet_cli.engine.train.loop import train
from fcnet_cli.sweep.load import sweep_from_mapping
from fcnet_cli.sweep.run import run_sweep

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("mnist", "digits"), default="mnist")
    p.add_argument("--n-train", type=int, default=60000, help="mnist: training images")
    p.add_argument("--configs", type=int, default=16, help="configurations (one layout)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample", type=int, help="time this many sequential runs and scale")
    return p.parse_args()


def base_experiment(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    if a.data == "mnist":
        root = make_mnist(REPO / "bench-data" / f"mnist-{a.n_train}", a.n_train, 10000)
        data = {"dataset": "mnist", "root": str(root), "val_fraction": 1 / 12}
    else:
        data = {"dataset": "digits"}
    return {"data": data, "model": {"hidden": [256, 128]},
            "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            "training": {"epochs": a.epochs, "batch_size": 128, "device": a.device},
            "output": {"dir": str(out)}}


def main() -> None:
    a = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spec = {"name": "bench", "base": base_experiment(a, out), "method": "grid",
                "max_population": a.configs,
                "parameters": {"optimizer.lr": {"log_uniform": [1e-3, 1e-1], "num": a.configs}}}
        sweep = sweep_from_mapping(spec, base_dir=REPO)
        assert len(sweep.points) == a.configs
        load_data(sweep.base_exp.data)  # warm-up: one-time imports and file cache, for both
        t0 = time.perf_counter()
        result = run_sweep(sweep)
        t_sweep = time.perf_counter() - t0
        assert result.counts["done"] == a.configs, result.counts
        print(json.dumps({"name": "sweep-population", "configs": a.configs,
                          "seconds": round(t_sweep, 2), "best": result.best and result.best.value}),
              flush=True)
        k = min(a.sample or a.configs, a.configs)
        times = []
        for i, point in enumerate(sweep.points[:k]):
            exp = sweep.experiment(point, name=f"seq-{i}")
            t0 = time.perf_counter()
            train(exp)
            times.append(time.perf_counter() - t0)
            print(json.dumps({"name": "sequential-run", "i": i, "seconds": round(times[-1], 2)}),
                  flush=True)
        t_seq = statistics.fmean(times) * a.configs
        print(json.dumps({
            "name": "summary", "data": a.data, "device": a.device, "epochs": a.epochs,
            "configs": a.configs, "threads": torch.get_num_threads(),
            "sweep_seconds": round(t_sweep, 2), "sequential_seconds": round(t_seq, 2),
            "sequential_sampled": k, "ratio": round(t_sweep / t_seq, 3),
            "throughput_x": round(t_seq / t_sweep, 2),
            "cpu_target_met": a.device != "cpu" or t_sweep / t_seq <= 0.6}), flush=True)


if __name__ == "__main__":
    main()

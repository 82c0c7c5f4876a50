"""Accuracy and wall time per fit of `model.ensemble: N` for N = 1, 4, 8, 16.

    PYTHONPATH=. python benchmarks/bench_ensemble.py [--threads 2] [--seeds 3] [--sizes 1,4,8,16]

Tables: wine, breast_cancer (scikit-learn's bundled sets) and the `penguins` table of
tests/messy_tables.py (text columns with empty cells, a numeric column with holes). Every fit
is `engine.train.train` in this process (no start-up, load or save beyond the run's own); the
split seed and the training seed change together over the seeds (member k of an ensemble
has training seed 1000·seed + k). Prints one row per table and N: test accuracy mean ± std
over the seeds, and seconds per fit (`train()` wall time, including the ensemble's test
evaluation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CONFIG = {  # one config for every table: what a README reader would write
    "model": {"hidden": [64, 64]},
    "optimizer": {"name": "adam", "lr": 0.003},
    "training": {"epochs": 60, "batch_size": 32, "device": "cpu",
                 "early_stopping": {"patience": 10}},
}


def _data(name: str, tmp: Path) -> dict:
    if name != "penguins":
        return {"dataset": name}
    from messy_tables import MESSY, write_csv

    kind = MESSY["penguins"]
    csv = write_csv(kind.frame(300, 0), tmp / "penguins.csv")
    return {"dataset": "csv", "path": str(csv), "target": kind.target,
            "missing": "median", "missing_indicator": True}


def fit(table: str, n: int, seed: int, threads: int, tmp: Path) -> tuple[float, float]:
    from fcnet_cli.config import Experiment
    from fcnet_cli.engine.train.loop import train

    raw = {**CONFIG, "data": {**_data(table, tmp), "split_seed": seed},
           "output": {"dir": str(tmp / "runs"), "name": f"{table}-{n}"}}
    raw["model"] = {**raw["model"], "ensemble": n}
    raw["training"] = {**raw["training"], "seed": 1000 * seed, "threads": threads}
    exp = Experiment.model_validate(raw)
    t0 = time.perf_counter()
    result = train(exp)
    seconds = time.perf_counter() - t0
    assert result.test is not None, result.status
    return result.test.accuracy, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sizes", default="1,4,8,16")
    ap.add_argument("--tables", default="wine,breast_cancer,penguins")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| table | N | test accuracy (mean ± std) | seconds per fit |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for table in args.tables.split(","):
            # every size once per seed, in turn: a change of the machine's load hits them alike
            runs = {n: [] for n in sizes}
            for seed in range(args.seeds):
                for n in sizes:
                    runs[n].append(fit(table, n, seed, args.threads, tmp))
            for n in sizes:
                accs, secs = [a for a, _ in runs[n]], [s for _, s in runs[n]]
                std = statistics.stdev(accs) if len(accs) > 1 else 0.0
                print(f"| {table} | {n} | {statistics.mean(accs):.4f} ± {std:.4f} | "
                      f"{statistics.mean(secs):.1f} |", flush=True)


if __name__ == "__main__":
    main()

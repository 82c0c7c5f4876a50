"""Test accuracy of the default experiment over seeds 0-4, and its wall time per run.

    .venv/bin/python benchmarks/digits_seeds.py [--seeds 5] [--population]

Prints one JSON line per seed and a summary line (mean and std of test accuracy, median
seconds per run). `--population` also trains the five seeds as one population.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fcnet_cli.config import load_experiment
from fcnet_cli.engine.train.loop import train, train_population

EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "digits.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        exps = [load_experiment(EXPERIMENT, [f"training.seed={s}", f"output.dir={out}"])
                for s in range(args.seeds)]
        accs, secs = [], []
        for exp in exps:
            t0 = time.perf_counter()
            r = train(exp)
            secs.append(time.perf_counter() - t0)
            assert r.test is not None
            accs.append(r.test.accuracy)
            print(json.dumps({"seed": exp.training.seed, "test_accuracy": r.test.accuracy,
                              "best_epoch": r.best_epoch, "seconds": round(secs[-1], 2)}))
        summary = {"name": "digits", "seeds": args.seeds,
                   "test_accuracy_mean": round(statistics.mean(accs), 4),
                   "test_accuracy_std": round(statistics.pstdev(accs), 4),
                   "seconds_per_run_median": round(statistics.median(secs), 2)}
        if args.population:
            t0 = time.perf_counter()
            pop = train_population(exps, run_dirs=[Path(out) / f"pop{i}"
                                                   for i in range(len(exps))])
            summary["population_seconds"] = round(time.perf_counter() - t0, 2)
            summary["population_same_results"] = all(
                p.test is not None and abs(p.test.accuracy - a) < 1e-9
                for p, a in zip(pop, accs, strict=True))
        print(json.dumps(summary))


if __name__ == "__main__":
    main()

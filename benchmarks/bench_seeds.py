"""`fcnet train EXP --seeds 5` against one seed: wall time of the whole command.

Runs the two commands alternately (this machine's speed drifts over minutes; alternating
cancels most of it) and prints each round and the medians:

    .venv/bin/python benchmarks/bench_seeds.py [--rounds 3] [--seeds 5] [--config FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--config", default="experiments/digits.yaml")
    args = parser.parse_args()
    one, many = [], []
    with tempfile.TemporaryDirectory() as out:
        base = [sys.executable, "-m", "fcnet_cli.cli", "train", args.config, "-q",
                "--set", f"output.dir={out}"]
        for r in range(args.rounds):
            one.append(_time(base))
            many.append(_time([*base, "--seeds", str(args.seeds)]))
            print(f"round {r + 1}: 1 seed {one[-1]:.1f} s, {args.seeds} seeds {many[-1]:.1f} s",
                  flush=True)
    a, b = statistics.median(one), statistics.median(many)
    print(f"median: 1 seed {a:.1f} s, {args.seeds} seeds {b:.1f} s, ratio {b / a:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

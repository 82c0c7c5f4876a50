"""What a population costs: member-epochs per second for K = 1, 16, 64 members.

    PYTHONPATH=. python benchmarks/bench_cost.py [--rows 1000 20000] [--sizes 1 16 64]

A generated classification table (20 numeric columns, 2 classes, `--rows` rows: 64% train,
16% validation, 20% test) trained with what a minimal YAML resolves to for it (the default
rule: batch size, AdamW, cosine, label smoothing), for a fixed 10 epochs without early
stopping; K members of one layout train as one population (`train_population`), each with
its own seed. Member-epochs per second = K × epochs ÷ the epochs' wall time (the loop's own
per-epoch seconds: data loading and checkpoint writing are not counted). Median of
`--rounds` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EPOCHS = 10


def _table(rows: int, path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 20))
    y = (x[:, :5].sum(axis=1) + 0.5 * rng.normal(size=rows) > 0).astype(int)
    pl.DataFrame({**{f"x{i}": x[:, i] for i in range(20)}, "label": y}).write_csv(path)
    return path


def member_epochs_per_second(csv: Path, k: int, out: Path) -> float:
    from fcnet_cli.config import validate_experiment
    from fcnet_cli.engine.data.load import load_data
    from fcnet_cli.engine.train.defaults import data_facts, resolve_defaults
    from fcnet_cli.engine.train.loop import train_population

    base = {"data": {"dataset": "csv", "path": str(csv), "target": "label"},
            "training": {"epochs": EPOCHS, "device": "cpu", "early_stopping": {"patience": None}},
            "output": {"dir": str(out), "name": "cost"}}
    first = validate_experiment(base)
    data = load_data(first.data, task=first.task)
    exps = []
    for seed in range(k):
        raw = {**base, "training": {**base["training"], "seed": seed}}
        exps.append(resolve_defaults(validate_experiment(raw), data_facts(data))[0])
    results = train_population(exps, data=data, eager_checkpoints=False)
    seconds = sum(h.seconds for h in results[0].history)
    return k * len(results[0].history) / seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[1000, 20000])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1, 16, 64])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print("| rows | K | member-epochs/s | s per epoch |")
    print("| ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            csv = _table(rows, Path(tmp) / f"t{rows}.csv")
            for k in args.sizes:
                rates = [member_epochs_per_second(csv, k, Path(tmp) / "runs")
                         for _ in range(args.rounds)]
                rate = statistics.median(rates)
                print(f"| {rows:,} | {k} | {rate:.1f} | {k / rate:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

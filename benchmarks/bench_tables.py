"""Table loading: `fcnet train` on a numeric CSV / Parquet file against polars' own reader.

    python benchmarks/bench_tables.py                    # 500,000 × 28, 3 interleaved repeats
    python benchmarks/bench_tables.py --scaling 10000,100000,1000000

Every measurement runs in a fresh child process (so peak RSS is that variant's alone), the
variants interleaved repeat by repeat; the table shows medians. Time to first epoch is from
the child's start (imports included) to the engine's `on_run_start` (data read, encoded,
split, normalized, model built). The synthetic files go to bench-data/tables/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench-data" / "tables"
FEATURES = 28


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_data(rows: int) -> tuple[Path, Path]:
    """A rows × 28 float CSV (5 decimals) with a 0/1 label, and the same as Parquet."""
    csv, parquet = DATA / f"numeric_{rows}.csv", DATA / f"numeric_{rows}.parquet"
    if csv.exists() and parquet.exists():
        return csv, parquet
    import numpy as np
    import polars as pl

    DATA.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).normal(size=(rows, FEATURES))
    frame = pl.DataFrame({f"f{i}": x[:, i] for i in range(FEATURES)}).with_columns(
        pl.Series("label", (x[:, 0] + x[:, 1] > 0).astype(np.int64)))
    frame.write_csv(csv, float_precision=5)
    frame.write_parquet(parquet)
    return csv, parquet


# ----------------------------------------------------------------------------- children


def child_polars(path: str) -> dict[str, float]:
    import polars as pl

    frame = pl.read_parquet(path) if path.endswith(".parquet") else pl.read_csv(path)
    assert frame.height > 0
    return {"seconds": time.perf_counter() - T0, "rss_mb": _rss_mb()}


def child_imports() -> dict[str, float]:
    """What `fcnet train` pays before reading anything: torch, polars, the engine."""
    import fcnet_cli.engine.train.loop  # noqa: F401

    return {"seconds": time.perf_counter() - T0, "rss_mb": _rss_mb()}


def child_fcnet(path: str, out_dir: str) -> dict[str, float]:
    from fcnet_cli.config import Experiment
    from fcnet_cli.engine.train.loop import train
    from fcnet_cli.events import Callback, RunStart

    found: dict[str, float] = {}

    class FirstEpoch(Callback):
        def on_run_start(self, start: RunStart) -> None:
            found["seconds"] = time.perf_counter() - T0
            found["rss_mb"] = _rss_mb()

    exp = Experiment.model_validate({
        "data": {"dataset": "parquet" if path.endswith(".parquet") else "csv", "path": path},
        "model": {"hidden": [64], "ensemble": 1},  # one model's cost, not the default's 8
        "training": {"epochs": 1, "batch_size": 512, "device": "cpu"},
        "output": {"dir": out_dir, "name": "bench"}})
    result = train(exp, callbacks=[FirstEpoch()])
    return {**found, "epoch_seconds": result.history[0].seconds, "run_rss_mb": _rss_mb()}


TORCH_THREADS: str | None = None  # --torch-threads: OMP_NUM_THREADS of the children


def run_child(*args: str) -> dict[str, float]:
    env = dict(os.environ, **({"OMP_NUM_THREADS": TORCH_THREADS} if TORCH_THREADS else {}))
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True, cwd=ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- parent


def loading(rows: int, repeats: int, out_dir: Path) -> None:
    csv, parquet = make_data(rows)
    variants = {"imports only (torch, polars, engine)": ("imports",),
                "polars read_csv": ("polars", str(csv)),
                "fcnet train, CSV": ("fcnet", str(csv), str(out_dir)),
                "polars read_parquet": ("polars", str(parquet)),
                "fcnet train, Parquet": ("fcnet", str(parquet), str(out_dir))}
    got: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved: each repeat runs every variant once
        for name, args in variants.items():
            got[name].append(run_child(*args))
    print(f"\n{rows:,} rows × {FEATURES} features ({csv.stat().st_size / 1e6:.0f} MB CSV, "
          f"{parquet.stat().st_size / 1e6:.0f} MB Parquet); medians of {repeats}\n")
    print("| variant | seconds (to first epoch) | peak RSS MB | ratio time | ratio RSS |")
    print("| --- | ---: | ---: | ---: | ---: |")
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "rss_mb")}
           for k, v in got.items()}
    base = {"fcnet train, CSV": "polars read_csv", "fcnet train, Parquet": "polars read_parquet"}
    for name, m in med.items():
        ref = med.get(base.get(name, ""))
        ratios = (f"{m['seconds'] / ref['seconds']:.2f}× | {m['rss_mb'] / ref['rss_mb']:.2f}×"
                  if ref else " | ")
        print(f"| {name} | {m['seconds']:.2f} | {m['rss_mb']:.0f} | {ratios} |")
    imp = med["imports only (torch, polars, engine)"]
    for kind in ("CSV", "Parquet"):
        f, p = med[f"fcnet train, {kind}"], med[f"polars read_{kind.lower()}"]
        print(f"\n{kind}, beyond the imports: fcnet {f['seconds'] - imp['seconds']:.2f} s / "
              f"{f['rss_mb'] - imp['rss_mb']:.0f} MB; polars alone "
              f"{p['seconds']:.2f} s / {p['rss_mb']:.0f} MB")


def scaling(sizes: list[int], repeats: int, out_dir: Path) -> None:
    print("\n| rows | CSV MB | seconds to first epoch | epoch seconds | peak RSS MB (whole run) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for rows in sizes:
        csv, _ = make_data(rows)
        runs = [run_child("fcnet", str(csv), str(out_dir)) for _ in range(repeats)]
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("seconds", "epoch_seconds", "run_rss_mb")}
        print(f"| {rows:,} | {csv.stat().st_size / 1e6:.0f} | {med['seconds']:.2f} | "
              f"{med['epoch_seconds']:.2f} | {med['run_rss_mb']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scaling", default="", help="comma-separated row counts, e.g. "
                                                  "10000,100000,1000000 (skips the loading table)")
    ap.add_argument("--torch-threads", default=None,
                    help="OMP_NUM_THREADS for the children (1 avoids spin-waiting threads on "
                         "a machine whose cores are busy with other work)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global TORCH_THREADS
    TORCH_THREADS = args.torch_threads
    if args.child:
        kind, *rest = args.child
        fn = {"polars": child_polars, "imports": child_imports, "fcnet": child_fcnet}[kind]
        print(json.dumps(fn(*rest)))
        return
    out_dir = DATA / "runs"
    print(f"python {sys.version.split()[0]}, shared 2-core machine, torch threads "
          f"{args.torch_threads or 'default'}; see the module docstring")
    if args.scaling:
        scaling([int(s) for s in args.scaling.split(",")], args.repeats, out_dir)
    else:
        loading(args.rows, args.repeats, out_dir)


if __name__ == "__main__":
    main()

"""`fcnet predict` on a large CSV vs reading it with polars + one plain PyTorch forward.

    .venv/bin/python benchmarks/bench_predict.py                 # 1,000,000 rows × 28, [64, 64]
    .venv/bin/python benchmarks/bench_predict.py --rows 100000 --repeats 1

Generates (once) a numeric CSV with 28 feature columns and an `id` column under
bench-data/predict/ (git-ignored), trains a [64, 64] model on a 20,000-row sample (2 epochs;
accuracy is not the point), then, interleaved `--repeats` times, runs as separate processes:

- `fcnet predict CKPT rows.csv -o preds.csv --batch-size 65536` (end to end: start-up, torch
  import, checkpoint load, chunked read, forward, write);
- the baseline: a fresh Python that imports polars and torch, reads the whole CSV with
  `polars.read_csv`, and runs one forward pass of the same nn.Sequential over all rows.

Peak RSS of each process comes from /usr/bin/time (its maximum resident set size). Then in-process:
ONNX Runtime vs fcnet's model on the same rows already in memory (rows/s, chunks of 65536).
Prints one JSON object per line; the last is the summary (targets: ratio ≤ 2, RSS ≤ 1 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
FEATURES = [f"f{i:02d}" for i in range(28)]
BASELINE = """
import sys, time
import polars as pl, torch
from fcnet_cli.serve.model import load_model
path, ckpt, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
module = load_model(ckpt).module  # the same nn.Sequential; loading is not timed below
t0 = time.perf_counter()
x = torch.from_numpy(pl.read_csv(path).select(names).to_numpy().astype("float32"))
t1 = time.perf_counter()
with torch.no_grad():
    y = module(x).argmax(-1)
t2 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1}")
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=65536)
    p.add_argument("--out", type=Path, default=REPO / "bench-data" / "predict")
    return p.parse_args()


def make_data(folder: Path, rows: int) -> tuple[Path, Path]:
    """rows.csv (id + 28 features) and a labelled 20,000-row train.csv; kept between runs."""
    folder.mkdir(parents=True, exist_ok=True)
    big, small = folder / f"rows-{rows}.csv", folder / "train.csv"
    if not big.exists():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((rows, 28)).astype(np.float32) * 3 + 1
        frame = pl.DataFrame(x, schema=FEATURES).with_columns(id=pl.int_range(rows))
        frame.select(["id", *FEATURES]).write_csv(big, float_precision=6)
        del frame
    if not small.exists():
        sample = pl.read_csv(big, n_rows=20_000).drop("id")
        label = (sample["f00"] + sample["f01"] * sample["f02"] > 1).cast(pl.Int64)
        sample.with_columns(label=label).write_csv(small)
    return big, small


def train_model(folder: Path, train_csv: Path) -> Path:
    from fcnet_cli import load_experiment, train

    exp = folder / "bench.yaml"
    exp.write_text(f"data: {{dataset: csv, path: {train_csv.as_posix()}}}\n"
                   "model: {hidden: [64, 64]}\n"
                   "training: {epochs: 2, batch_size: 256, device: cpu}\n"
                   f"output: {{dir: {(folder / 'runs').as_posix()}}}\n", encoding="utf-8")
    run = train(load_experiment(exp)).run_dir
    assert run is not None
    return Path(run)


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one child process.

    The peak RSS comes from /usr/bin/time: a child started directly by this (large) process
    would inherit its high-water mark through fork/exec and report it as its own.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "time.txt"
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{cmd[:4]} failed: {proc.stderr[-2000:]}")
        kib = int(report.read_text().split()[-1])
    return wall, kib * 1024, proc.stdout


def main() -> None:
    args = parse_args()
    big, small = make_data(args.out, args.rows)
    ckpt = train_model(args.out, small)
    preds = args.out / "preds.csv"
    fcnet = [sys.executable, "-m", "fcnet_cli.cli", "predict", str(ckpt), str(big), "-o",
             str(preds), "--overwrite", "--batch-size", str(args.batch_size)]
    base = [sys.executable, "-c", BASELINE, str(big), str(ckpt), ",".join(FEATURES)]
    rows: dict[str, list[float]] = {k: [] for k in
                                    ("fcnet_s", "fcnet_rss", "base_s", "base_rss", "read_s",
                                     "forward_s")}
    for rep in range(args.repeats):  # interleaved: the machine is shared and noisy
        f_wall, f_rss, _ = timed(fcnet)
        b_wall, b_rss, out = timed(base)
        read_s, fwd_s = map(float, out.split())
        for k, v in zip(rows, (f_wall, f_rss, b_wall, b_rss, read_s, fwd_s), strict=True):
            rows[k].append(v)
        print(json.dumps({"repeat": rep, "fcnet_predict_s": round(f_wall, 3),
                          "fcnet_peak_rss_mib": round(f_rss / 2**20, 1),
                          "baseline_process_s": round(b_wall, 3),
                          "baseline_read_plus_forward_s": round(read_s + fwd_s, 3),
                          "baseline_peak_rss_mib": round(b_rss / 2**20, 1)}), flush=True)
    assert pl.scan_csv(preds).select(pl.len()).collect().item() == args.rows
    med = {k: statistics.median(v) for k, v in rows.items()}
    inp = in_process(ckpt, big, preds, args.batch_size, args.repeats)
    n = args.rows
    print(json.dumps({
        "rows": n, "batch_size": args.batch_size, "repeats": args.repeats,
        "processes": {
            "fcnet_predict_s": round(med["fcnet_s"], 3),
            "baseline_s": round(med["base_s"], 3),
            "ratio": round(med["fcnet_s"] / med["base_s"], 3),
            "baseline_read_s": round(med["read_s"], 3),
            "baseline_forward_s": round(med["forward_s"], 3),
            "fcnet_peak_rss_mib": round(med["fcnet_rss"] / 2**20, 1),
            "baseline_peak_rss_mib": round(med["base_rss"] / 2**20, 1)},
        "in_process": {
            "predict_file_s": round(inp["predict_file"], 3),
            "read_plus_forward_s": round(inp["read"] + inp["forward"], 3),
            "ratio": round(inp["predict_file"] / (inp["read"] + inp["forward"]), 3),
            "rows_per_s": {"fcnet_predict": round(n / inp["predict_file"]),
                           "onnxruntime_in_memory": round(n / inp["ort"]),
                           "fcnet_model_in_memory": round(n / inp["fcnet_model"])}},
        "import_torch_rss_mib": round(torch_floor() / 2**20, 1),
    }))


def torch_floor() -> int:
    """Peak RSS of a Python that only imports torch: the floor under any fcnet process."""
    return timed([sys.executable, "-c", "import torch"])[1]


def in_process(ckpt: Path, csv: Path, preds: Path, batch: int, repeats: int
               ) -> dict[str, float]:
    """Median seconds, all in this process (no start-up), interleaved per repeat: fcnet's
    `predict_file`, polars read + one forward, and ONNX Runtime vs fcnet's model on the
    features already in memory (chunks of ``batch``)."""
    import onnxruntime as ort
    import torch

    from fcnet_cli.serve.export import export_model
    from fcnet_cli.serve.model import load_model
    from fcnet_cli.serve.predict import predict_file

    model = load_model(ckpt)
    onnx_path = csv.parent / "bench.onnx"
    export_model(model, onnx_path, "onnx", overwrite=True)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    times: dict[str, list[float]] = {k: [] for k in
                                     ("predict_file", "read", "forward", "ort", "fcnet_model")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_file(model, csv, preds, batch_size=batch, overwrite=True)
        t1 = time.perf_counter()
        x = pl.read_csv(csv).select(FEATURES).to_numpy().astype(np.float32)  # (N, 28)
        t2 = time.perf_counter()
        with torch.no_grad():
            model.module(torch.from_numpy(x)).argmax(-1)
        t3 = time.perf_counter()
        columns = [np.ascontiguousarray(x[:, j:j + 1]) for j in range(x.shape[1])]  # raw inputs
        for i in range(0, len(x), batch):
            session.run(["probabilities"], {name: c[i:i + batch]
                                            for name, c in zip(FEATURES, columns, strict=True)})
        t4 = time.perf_counter()
        model.proba_of(x)
        t5 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[k].append(v)
        del x
    return {k: statistics.median(v) for k, v in times.items()}


if __name__ == "__main__":
    main()

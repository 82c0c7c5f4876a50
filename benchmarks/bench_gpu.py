"""fcnet on a CUDA GPU: the captured epoch against an eager loop, and populations of K.

    python benchmarks/bench.py --device cuda              # runs this script
    python benchmarks/bench_gpu.py --out gpu.jsonl        # 60000 synthetic MNIST-shaped images
    python benchmarks/bench_gpu.py --quick                # smoke run: 6000 images, K ≤ 64

Layout as in bench.py: 784 → 256 → 128 → 10 (ReLU), batch 128, SGD momentum, on fcnet's train
split of the synthetic MNIST-shaped set (make_mnist.py, written locally; nothing downloads),
resident on the device. Each run does 1 warm-up epoch (it captures the graphs) + N timed
epochs (`--epochs`) and reports the median timed epoch (training steps only, as fcnet's
metrics.csv `seconds`). Rows:

- plain: the eager hand-written PyTorch loop (nn.Sequential + torch.optim.SGD, x[idx]);
- fcnet K=1 with the captured epoch, and with FCNET_CUDA_GRAPHS=0 (the eager per-step loop);
- populations of K members (lr 0.01 … 0.08, momentum 0.5 … 0.9, own seeds) per precision:
  member-epochs/s = K / epoch seconds, and the peak GPU memory of the run. Checkpoint files
  are not written for these rows (their time is outside the epoch anyway).

Output: one JSON object per line, then a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_mnist import make as make_mnist  # noqa: E402

from fcnet_cli.config import Experiment  # noqa: E402
from fcnet_cli.engine.data.load import DataSplits, load_data  # noqa: E402
from fcnet_cli.engine.train import finish  # noqa: E402
from fcnet_cli.engine.train.loop import train_population  # noqa: E402

BATCH, LR, MOMENTUM, VAL_FRACTION = 128, 0.05, 0.9, 1 / 12


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after 1 warm-up")
    p.add_argument("--quick", action="store_true", help="6000 images, K up to 64")
    p.add_argument("--ks", default="16,64,256,1024", help="population sizes")
    p.add_argument("--precisions", default="fp32,tf32,bf16")
    p.add_argument("--out", type=Path, help="also write the JSON lines here")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "fcnet-bench")
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of this script only")
    p.add_argument("--profile", type=Path, help="also write the top kernels of one uncaptured "
                                                "epoch (K=1 fp32, K=256 tf32) to this file")
    a = p.parse_args(argv)
    a.n_pool, a.n_test = (6000, 1000) if a.quick else (60000, 10000)
    a.ks = [int(k) for k in a.ks.split(",") if not a.quick or int(k) <= 64]
    a.precisions = a.precisions.split(",")
    return a


def experiment(root: Path, out: str, k: int = 0, n: int = 1, epochs: int = 3,
               precision: str = "fp32", device: str = "cuda") -> Experiment:
    lr = LR if n == 1 else 0.01 * 8 ** (k / max(n - 1, 1))
    momentum = MOMENTUM if n == 1 else (0.5, 0.7, 0.8, 0.9)[k % 4]
    return Experiment.model_validate({
        "data": {"dataset": "mnist", "root": str(root), "val_fraction": VAL_FRACTION},
        "model": {"hidden": [256, 128], "activation": "relu"},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": momentum},
        "training": {"epochs": epochs, "batch_size": BATCH, "seed": k, "device": device,
                     "precision": precision},
        "output": {"dir": out, "name": f"m{k:04d}"},
    })


@contextlib.contextmanager
def env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def no_checkpoints() -> Iterator[None]:
    """Population rows: skip writing K checkpoint files (outside the timed epochs)."""
    real = finish.save_model
    finish.save_model = lambda *a, **k: None  # type: ignore[assignment]
    try:
        yield
    finally:
        finish.save_model = real  # type: ignore[assignment]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(dev: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")


def plain(d: DataSplits, epochs: int) -> dict[str, Any]:
    """The eager PyTorch loop on the device-resident split."""
    dev = d.x_train.device
    x, y = d.x_train.to(dev), d.y_train.to(dev)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    times = []
    for _ in range(epochs + 1):
        sync(dev)
        t0 = time.perf_counter()
        perm = torch.randperm(len(y), device=dev)
        for s in range(0, len(y), BATCH):
            idx = perm[s:s + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return {"name": "plain eager loop", "K": 1, "precision": "fp32",
            "epoch_s": statistics.median(times[1:]), "epochs_s": times}


def fcnet(a: argparse.Namespace, d: DataSplits, n: int, precision: str, name: str,
          graphs: str = "1") -> dict[str, Any]:
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp, env("FCNET_CUDA_GRAPHS", graphs), \
            no_checkpoints():
        exps = [experiment(a.root, tmp, k, n, a.epochs + 1, precision, a.device)
                for k in range(n)]
        t0 = time.perf_counter()
        results = train_population(exps, data=d, eager_checkpoints=False)
        wall = time.perf_counter() - t0
    hist = max((r.history for r in results), key=len)
    times = [m.seconds for m in hist]
    epoch_s = statistics.median(times[1:]) if len(times) > 1 else float("nan")
    accs = [m.val_accuracy for r in results for m in r.history[-1:]]
    return {"name": name, "K": n, "precision": precision, "epoch_s": epoch_s,
            "member_epochs_per_s": n / epoch_s, "epochs_s": times, "run_wall_s": wall,
            "peak_gib": peak_gib(torch.device(a.device)),
            "val_accuracy_median": statistics.median(accs) if accs else None,
            "statuses": sorted({r.status for r in results}),
            "engine": results[0].engine}


def profile(a: argparse.Namespace, d: DataSplits, path: Path) -> None:
    """The kernels of one epoch, run uncaptured (the same kernels a replay launches)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    lines = []
    for n, precision in ((1, "fp32"), (256, "tf32")):
        with tempfile.TemporaryDirectory() as tmp, env("FCNET_CUDA_GRAPHS", "eager"), \
                no_checkpoints():
            exps = [experiment(a.root, tmp, k, n, 1, precision, a.device) for k in range(n)]
            with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
                train_population(exps, data=d, eager_checkpoints=False)
        lines.append(f"## K={n} {precision}: one epoch uncaptured (training + evaluation)\n")
        lines.append(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25,
                                               max_name_column_width=70))
    path.write_text("\n".join(lines))


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| run | K | precision | s/epoch | member-epochs/s | peak GPU GiB | val acc |",
           "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['name']} | {r.get('K', '')} | {r.get('precision', '')} | "
                       f"error: {r['error'][:60]} | | | |")
            continue
        me = r.get("member_epochs_per_s", 1 / r["epoch_s"])
        acc = r.get("val_accuracy_median")
        out.append(f"| {r['name']} | {r['K']} | {r['precision']} | {r['epoch_s']:.4f} | "
                   f"{me:.1f} | {r.get('peak_gib', float('nan')):.2f} | "
                   f"{'' if acc is None else f'{acc:.4f}'} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA device (--device cpu: a smoke run)")
    a.root = make_mnist(a.data_dir / f"mnist-{a.n_pool}", a.n_pool, a.n_test)
    d = load_data(experiment(a.root, ".").data).to(torch.device(a.device))
    sink = a.out.open("w") if a.out else None
    rows: list[dict[str, Any]] = []

    def run(label: str, fn: Any, *args: Any, **kw: Any) -> None:
        try:
            rec = fn(*args, **kw)
        except Exception as e:  # one broken row must not hide the others
            traceback.print_exc()
            rec = {"name": label, "error": f"{type(e).__name__}: {e}", "K": kw.get("n", ""),
                   "precision": kw.get("precision", "")}
        rows.append(rec)
        line = json.dumps(rec)
        print(line, flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()

    gpu = torch.cuda.get_device_name() if a.device == "cuda" else "none"
    print(json.dumps({"name": "setup", "gpu": gpu,
                      "torch": torch.__version__, "n_train": len(d.y_train)}), flush=True)
    run("plain eager loop", plain, d, a.epochs)
    run("fcnet", fcnet, a, d, n=1, precision="fp32", name="fcnet (CUDA graphs)")
    run("fcnet eager", fcnet, a, d, n=1, precision="fp32", name="fcnet (eager step loop)",
        graphs="0")
    for precision in a.precisions:
        for n in ([1] if precision != "fp32" else []) + a.ks:
            run("population", fcnet, a, d, n=n, precision=precision, name="population")
    if a.profile:
        try:
            profile(a, d, a.profile)
        except Exception:  # the table above must still print
            traceback.print_exc()
    print(table(rows), flush=True)
    if sink:
        sink.write("# " + table(rows).replace("\n", "\n# ") + "\n")
        sink.close()


if __name__ == "__main__":
    main()

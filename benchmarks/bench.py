"""How fast is `fcnet train` next to the usual ways of training the same MLP?

    .venv/bin/python benchmarks/bench.py                  # CPU, full 60000-image data set
    .venv/bin/python benchmarks/bench.py --quick          # smoke run: 6000 images, 1+1 epochs
    .venv/bin/python benchmarks/bench.py --device cuda --out bench.jsonl  # bench_gpu.py
    .venv/bin/python benchmarks/bench.py --only fcnet,plain --epochs 5

One layout everywhere: 784 → 256 → 128 → 10 (ReLU), batch 128, SGD lr 0.05 momentum 0.9.
The data set is synthetic, in MNIST's raw IDX format, written once under `bench-data/` (see
make_mnist.py) and read back through torchvision's MNIST class (fcnet's `data.dataset: mnist`).
fcnet, the plain loop, scikit-learn and the population train on fcnet's own train split
(standardized, val_fraction 1/12); the tutorial loop reads the whole train file through
torchvision's transforms and DataLoader, as tutorials do. Every run does 1 warm-up epoch + N
timed epochs (`--epochs N`) and reports the median timed epoch; the tutorial loop reports the
median of all its `--tutorial-epochs`. Output: one JSON object per line, each with "name", and a
final "summary" line with the ratios and whether each target is met.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from make_mnist import make as make_mnist
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.train.loop import train, train_population

REPO = Path(__file__).resolve().parents[1]
IN, HIDDEN, CLASSES = 784, [256, 128], 10
BATCH, LR, MOMENTUM, VAL_FRACTION, POP_K = 128, 0.05, 0.9, 1 / 12, 16
# multiply-adds of one forward pass per sample; forward + backward ≈ 3 × forward, 2 FLOPs per MAC
FLOPS_PER_SAMPLE = 6 * (IN * 256 + 256 * 128 + 128 * CLASSES)
METHODS = ("fcnet", "plain", "sklearn", "tutorial", "population", "fcnet-rss", "help")
TRAINING = ("fcnet", "plain", "sklearn", "tutorial", "population")


# ----------------------------------------------------------------------------- set-up


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, help="timed epochs per run, after 1 warm-up epoch "
                                              "(default 3; --quick: 1)")
    p.add_argument("--tutorial-epochs", type=int, help="epochs of the (slow) tutorial loop "
                                                       "(default 2; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="6000 training images: a smoke run")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--only", help=f"comma-separated subset of: {','.join(METHODS)}")
    p.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    p.add_argument("--data-dir", type=Path, default=REPO / "bench-data",
                   help="cache folder of the generated data sets")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.epochs = a.epochs or (1 if a.quick else 3)
    a.tutorial_epochs = a.tutorial_epochs or (1 if a.quick else 2)
    a.n_pool, a.n_test = (6000, 1000) if a.quick else (60000, 10000)
    a.root = a.data_dir / f"mnist-{a.n_pool}"
    a.only = [m.strip() for m in a.only.split(",")] if a.only else list(METHODS)
    unknown = sorted(set(a.only) - set(METHODS))
    if unknown:
        p.error(f"unknown --only name(s) {unknown}; choose from {list(METHODS)}")
    return a


def experiment(args: argparse.Namespace, out_dir: str, *, seed: int = 0, lr: float = LR,
               momentum: float = MOMENTUM, name: str = "bench") -> Experiment:
    """The fcnet experiment, as a YAML file would give it (1 warm-up + N timed epochs)."""
    return Experiment.model_validate({
        "data": {"dataset": "mnist", "root": str(args.root), "val_fraction": VAL_FRACTION},
        "model": {"hidden": HIDDEN, "activation": "relu"},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": momentum},
        "training": {"epochs": args.epochs + 1, "batch_size": BATCH, "seed": seed,
                     "device": args.device},
        "output": {"dir": out_dir, "name": name},
    })


class Bench:
    """What every method needs: arguments, device, the shared splits, the compute limit."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.device = args, torch.device(args.device)
        self.results: dict[str, dict[str, Any]] = {}
        self._data: DataSplits | None = None
        self.flops = float("nan")

    @property
    def data(self) -> DataSplits:
        if self._data is None:
            self._data = load_data(experiment(self.args, ".").data)
        return self._data

    @property
    def n_train(self) -> int:
        return len(self.data.y_train)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> dict[str, Any]:
        if self.device.type != "cuda":
            return {}
        return {"cuda_max_memory_allocated_bytes": torch.cuda.max_memory_allocated()}


def epoch_record(b: Bench, name: str, times: list[float], n_train: int, accuracy: float | None,
                 warmup: bool = True, **extra: Any) -> dict[str, Any]:
    """Median epoch time (first epoch dropped when `warmup`) as a multiple of the bound."""
    timed = times[1:] if warmup and len(times) > 1 else times
    epoch = statistics.median(timed)
    bound = FLOPS_PER_SAMPLE * n_train / b.flops
    return {"name": name, "device": b.args.device, "n_train": n_train,
            "epochs_timed": len(timed), "epoch_s": round(epoch, 4),
            "epoch_times_s": [round(t, 4) for t in times], "test_accuracy": accuracy,
            "x_compute_limit": round(epoch / bound, 2), **b.peak(), **extra}


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(IN, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, CLASSES))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[s:s + 8192]).argmax(1) == y[s:s + 8192]).sum())
                  for s in range(0, len(y), 8192))
    return correct / len(y)


# ----------------------------------------------------------------------------- methods


def bench_setup(b: Bench) -> dict[str, Any]:
    d = b.data
    return {"name": "setup", "device": b.args.device, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "data_root": str(b.args.root),
            "n_train": len(d.y_train), "n_val": len(d.y_val), "n_test": len(d.y_test),
            "tutorial_n_train": b.args.n_pool, "timed_epochs": b.args.epochs,
            "note": "tutorial trains on the whole train file (no validation split)"}


def bench_compute_limit(b: Bench, n: int = 2048, reps: int = 7) -> dict[str, Any]:
    """Dense fp32 matmul throughput (median of `reps`) → the lower bound on an epoch."""
    x, y = torch.randn(n, n, device=b.device), torch.randn(n, n, device=b.device)
    inner = 20 if b.device.type == "cuda" else 1
    times = []
    for _ in range(reps + 1):
        b.sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(x, y)
        b.sync()
        times.append((time.perf_counter() - t0) / inner)
    b.flops = 2 * n**3 / statistics.median(times[1:])
    per_epoch = FLOPS_PER_SAMPLE * b.n_train
    return {"name": "compute-limit", "device": b.args.device, "matmul": f"{n}x{n} fp32",
            "matmul_gflops": round(b.flops / 1e9, 1), "flops_per_sample": FLOPS_PER_SAMPLE,
            "flops_per_epoch": per_epoch, "n_train": b.n_train,
            "epoch_bound_s": round(per_epoch / b.flops, 5)}


def bench_fcnet(b: Bench) -> dict[str, Any]:
    """`fcnet train` as the CLI runs it, minus the display (callbacks=[])."""
    b.reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train(experiment(b.args, tmp), callbacks=[])
        wall = time.perf_counter() - t0
    acc = res.test.accuracy if res.test else None
    return epoch_record(b, "fcnet", [m.seconds for m in res.history], b.n_train, acc,
                        run_wall_s=round(wall, 3), status=res.status, engine=res.engine,
                        val_accuracy=res.history[-1].val_accuracy)


def bench_plain(b: Bench) -> dict[str, Any]:
    """A hand-written loop over the in-memory tensors: randperm batches, nn + torch.optim."""
    dev, d = b.device, b.data
    x, y = d.x_train.to(dev), d.y_train.to(dev)
    torch.manual_seed(0)
    model = mlp().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    b.reset_peak()
    times = []
    for _ in range(b.args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y), device=dev)
        for s in range(0, len(y), BATCH):
            idx = perm[s:s + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        b.sync()
        times.append(time.perf_counter() - t0)
    acc = accuracy(model, d.x_test.to(dev), d.y_test.to(dev))
    return epoch_record(b, "plain", times, len(y), acc)


def bench_sklearn(b: Bench) -> dict[str, Any]:
    """scikit-learn's MLPClassifier, one partial_fit per epoch (always on the CPU)."""
    from sklearn.neural_network import MLPClassifier

    d = b.data
    x, y = d.x_train.numpy(), d.y_train.numpy()
    clf = MLPClassifier(hidden_layer_sizes=tuple(HIDDEN), solver="sgd", batch_size=BATCH,
                        momentum=MOMENTUM, nesterovs_momentum=False, learning_rate_init=LR,
                        alpha=0.0, max_iter=b.args.epochs + 1, tol=0.0,
                        n_iter_no_change=10**9, early_stopping=False, shuffle=True,
                        random_state=0)
    times = []
    for _ in range(b.args.epochs + 1):
        t0 = time.perf_counter()
        clf.partial_fit(x, y, classes=np.arange(CLASSES))
        times.append(time.perf_counter() - t0)
    acc = float(clf.score(d.x_test.numpy(), d.y_test.numpy()))
    rec = epoch_record(b, "sklearn", times, len(y), acc, note="CPU, float32, alpha=0 "
                       "(no L2, like the others)")
    rec["device"] = "cpu"
    rec.pop("cuda_max_memory_allocated_bytes", None)
    return rec


def bench_tutorial(b: Bench) -> dict[str, Any]:
    """The usual tutorial: torchvision MNIST + ToTensor/Normalize + DataLoader + nn + optim."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dev = b.device
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(str(b.args.root), train=True, transform=tf)
    test_set = datasets.MNIST(str(b.args.root), train=False, transform=tf)
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), *mlp()).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    b.reset_peak()
    times = []
    for _ in range(b.args.tutorial_epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        b.sync()
        times.append(time.perf_counter() - t0)
    correct = 0
    with torch.no_grad():
        model.eval()
        for xb, yb in DataLoader(test_set, batch_size=1000):
            correct += int((model(xb.to(dev)).argmax(1).cpu() == yb).sum())
    return epoch_record(b, "tutorial", times, len(train_set), correct / len(test_set),
                        warmup=False, note="whole train file; median of all epochs")


def bench_population(b: Bench) -> dict[str, Any]:
    """16 configurations (lr, momentum, seed) of one layout trained together."""
    lrs = [0.01 * 8 ** (k / (POP_K - 1)) for k in range(POP_K)]  # 0.01 … 0.08
    moms = [(0.5, 0.7, 0.8, 0.9)[k % 4] for k in range(POP_K)]
    b.reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        exps = [experiment(b.args, tmp, seed=k, lr=lrs[k], momentum=moms[k], name=f"pop{k:02d}")
                for k in range(POP_K)]
        t0 = time.perf_counter()
        results = train_population(exps, callbacks=[], data=b.data)
        wall = time.perf_counter() - t0
    history = max((r.history for r in results), key=len)
    accs = [r.test.accuracy for r in results if r.test]
    rec = epoch_record(b, "population", [m.seconds for m in history], b.n_train,
                       statistics.median(accs) if accs else None, K=POP_K,
                       run_wall_s=round(wall, 3), test_accuracy_min=min(accs, default=None),
                       test_accuracy_max=max(accs, default=None),
                       statuses=sorted({r.status for r in results}))
    rec["per_config_epoch_s"] = round(rec["epoch_s"] / POP_K, 4)
    rec["x_compute_limit_per_config"] = round(rec.pop("x_compute_limit") / POP_K, 2)
    single = b.results.get("fcnet", {}).get("epoch_s")
    rec["per_config_vs_single"] = (round(rec["per_config_epoch_s"] / single, 3)
                                   if single else None)
    return rec


def rss_child(args: argparse.Namespace) -> None:
    """In a fresh process: `fcnet train`, then print its peak memory as one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        res = train(experiment(args, tmp), callbacks=[])
    rec: dict[str, Any] = {**peak_rss(), "status": res.status}
    if args.device == "cuda":
        rec["cuda_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(rec))


def peak_rss() -> dict[str, int]:
    """This process's peak RSS in bytes.

    On Linux a child started from a large parent inherits the parent's high-water mark in
    ``ru_maxrss`` (fork copies it, exec keeps it), so the peak comes from VmHWM in
    /proc/self/status, which belongs to the new address space; ru_maxrss is reported too.
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    status = Path("/proc/self/status")
    hwm = [line.split()[1] for line in status.read_text().splitlines()
           if line.startswith("VmHWM:")] if status.exists() else []
    return {"peak_rss_bytes": int(hwm[0]) * 1024 if hwm else maxrss, "ru_maxrss_bytes": maxrss}


# a bare `import torch`, measured like peak_rss() without importing anything else
BARE_TORCH = """import json, resource, sys, torch
if sys.argv[1] == "cuda":
    torch.zeros(1, device="cuda")  # the CUDA context belongs to the baseline
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rss_bytes": int(hwm[0] if hwm else rss) * 1024}))"""


def bench_rss(b: Bench) -> dict[str, Any]:
    """Peak RSS of `fcnet train` vs (data bytes + RSS of a bare `import torch`)."""
    cmd = [sys.executable, __file__, "--rss-child", "--device", b.args.device,
           "--epochs", str(b.args.epochs), "--data-dir", str(b.args.data_dir)]
    out = subprocess.run(cmd + (["--quick"] if b.args.quick else []), check=True,
                         capture_output=True, text=True)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    bare = subprocess.run([sys.executable, "-c", BARE_TORCH, b.args.device], check=True,
                          capture_output=True, text=True)
    torch_rss = json.loads(bare.stdout.strip().splitlines()[-1])["peak_rss_bytes"]
    d = b.data
    data_bytes = sum(t.nbytes for t in (d.x_train, d.y_train, d.x_val, d.y_val, d.x_test,
                                        d.y_test))
    ratio = child["peak_rss_bytes"] / (data_bytes + torch_rss)
    return {"name": "fcnet-rss", "device": b.args.device, **child, "data_bytes": data_bytes,
            "bare_torch_rss_bytes": torch_rss, "rss_vs_data_plus_torch": round(ratio, 3)}


def bench_help(b: Bench) -> dict[str, Any]:
    """Wall time of `fcnet --help` in a subprocess, median of 3."""
    exe = Path(sys.executable).parent / "fcnet"
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "fcnet_cli.cli",
                                                      "--help"]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            return {"name": "help", "skipped": True, "command": " ".join(cmd),
                    "note": f"exit {r.returncode}: {(r.stderr.strip() or '?').splitlines()[-1]}"}
    return {"name": "help", "command": " ".join(cmd), "median_s": round(statistics.median(times),
                                                                      3),
            "times_s": [round(t, 3) for t in times]}


RUNNERS = {"fcnet": bench_fcnet, "plain": bench_plain, "sklearn": bench_sklearn,
           "tutorial": bench_tutorial, "population": bench_population, "fcnet-rss": bench_rss,
           "help": bench_help}


# ----------------------------------------------------------------------------- summary


def summary(r: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios against the targets; a check whose inputs did not run is null."""
    def get(name: str, key: str) -> float | None:
        return r.get(name, {}).get(key)

    fc, tut = get("fcnet", "epoch_s"), get("tutorial", "epoch_s")
    if tut is not None and fc is not None:  # per sample: the tutorial sees the whole file
        tut = tut * r["fcnet"]["n_train"] / r["tutorial"]["n_train"]
    checks = {
        "fcnet_vs_plain": (fc, get("plain", "epoch_s"), 0.8),
        "fcnet_vs_tutorial_per_sample": (fc, tut, 0.2),
        "fcnet_vs_sklearn": (fc, get("sklearn", "epoch_s"), 0.75),
        "fcnet_x_compute_limit": (get("fcnet", "x_compute_limit"), 1.0, 1.2),
        "population_x_compute_limit_per_config": (
            get("population", "x_compute_limit_per_config"), 1.0, 1.1),
        "rss_vs_data_plus_torch": (get("fcnet-rss", "rss_vs_data_plus_torch"), 1.0, 1.5),
        "help_s": (get("help", "median_s"), 1.0, 0.5),
    }
    out: dict[str, Any] = {"name": "summary"}
    for key, (num, den, target) in checks.items():
        value = None if num is None or den is None else round(num / den, 3)
        out[key] = {"value": value, "target": target,
                    "met": None if value is None else value <= target}
    met = [c["met"] for c in out.values() if isinstance(c, dict) and c["met"] is not None]
    out["all_met"] = all(met) if met else None
    return out


def describe_error(e: Exception) -> str:
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, subprocess.CalledProcessError) and e.stderr:
        text += " | " + e.stderr.strip().splitlines()[-1]
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device == "cuda":  # the GPU's own comparison: captured epoch, populations of K
        from bench_gpu import main as gpu_main

        gpu_main(["--epochs", str(args.epochs), "--data-dir", str(args.data_dir)]
                 + (["--quick"] if args.quick else [])
                 + (["--out", str(args.out)] if args.out else []))
        return
    make_mnist(args.root, args.n_pool, args.n_test)
    if args.rss_child:
        rss_child(args)
        return
    sink = args.out.open("w") if args.out else None

    def emit(rec: dict[str, Any]) -> None:
        line = json.dumps(rec)
        print(line, flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()

    b = Bench(args)
    if set(args.only) & set(TRAINING):
        emit(bench_setup(b))
        emit(bench_compute_limit(b))
    for name in METHODS:
        if name in args.only:
            try:
                b.results[name] = RUNNERS[name](b)
            except Exception as e:  # one broken method must not hide the others
                b.results[name] = {"name": name, "error": describe_error(e)}
            emit(b.results[name])
    emit(summary(b.results))
    if sink:
        sink.close()


if __name__ == "__main__":
    main()

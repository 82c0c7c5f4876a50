"""Write a learnable, synthetic MNIST-shaped data set as torchvision's raw IDX files.

    python benchmarks/make_mnist.py bench-data/mnist-60000 --n-train 60000 --n-test 10000

Each of the 10 classes has a smooth 28×28 prototype; an image is its class prototype, a
random fraction of another class's prototype, Gaussian noise and a shift of up to ±2 pixels,
rendered to uint8. torchvision's `MNIST(root)` reads the result from `root/MNIST/raw` with no
download. Files are written once per parameter set and reused (a `SYNTHETIC.json` stamp).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VERSION = 1
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0x0000 0x08 (uint8) ndim, then big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def prototypes(rng: np.random.Generator) -> np.ndarray:
    """10 smooth patterns in [0, 1], (10, 28, 28): 7×7 random fields upsampled 4× and blurred."""
    low = rng.random((10, 7, 7)) ** 2
    up = np.kron(low, np.ones((4, 4)))  # (10, 28, 28)
    for axis in (1, 2):  # a box blur along each image axis
        up = (np.roll(up, 1, axis) + up + np.roll(up, -1, axis)) / 3
    return up / up.max(axis=(1, 2), keepdims=True)


def render(protos: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images (N, 28, 28) uint8 for the given labels."""
    n = len(labels)
    other = (labels + rng.integers(1, 10, n)) % 10  # a different class
    mix = rng.uniform(0.0, 0.9, (n, 1, 1)).astype(np.float32)
    img = protos[labels] + mix * protos[other] + rng.normal(0, 0.5, (n, 28, 28))
    shifts = rng.integers(-2, 3, (n, 2))
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            sel = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            img[sel] = np.roll(img[sel], (dy, dx), axis=(1, 2))
    return (np.clip(img / 1.7, 0, 1) * 255).round().astype(np.uint8)


def make(root: Path, n_train: int = 60000, n_test: int = 10000, seed: int = 0) -> Path:
    """Write `root/MNIST/raw/*` unless files with these parameters are already there."""
    raw = root / "MNIST" / "raw"
    stamp = root / "SYNTHETIC.json"
    params = {"version": VERSION, "n_train": n_train, "n_test": n_test, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == params and all(
            (raw / f).is_file() for f in FILES):
        return root
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    protos = prototypes(rng).astype(np.float32)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        chunks = [render(protos, labels[s:s + 10000].astype(np.int64), rng)
                  for s in range(0, n, 10000)]
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.concatenate(chunks))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    stamp.write_text(json.dumps(params))
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(make(a.root, a.n_train, a.n_test, a.seed))


if __name__ == "__main__":
    main()

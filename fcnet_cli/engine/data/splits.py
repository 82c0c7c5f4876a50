"""The seeded, stratified train / validation / test split of a data set's rows, and label
noise on the training split (the overfitting studies' harder problem). numpy only."""

from __future__ import annotations

import math

import numpy as np

from fcnet_cli.errors import DataError

__all__ = ["split_indices", "split_size", "stratified_take", "with_label_noise"]



def with_label_noise(y: np.ndarray, n_classes: int, fraction: float, seed: int) -> np.ndarray:
    """A copy of `y` (N,) with round(fraction·N) labels, picked from `seed`, moved to another
    class chosen uniformly (so each picked label is certainly wrong)."""
    if fraction <= 0 or n_classes < 2:
        return y
    rng = np.random.default_rng([seed, 1])  # a stream apart from the split's
    picked = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    shift = rng.integers(1, n_classes, size=len(picked))  # 1..C-1: never the same class
    out = y.copy()
    out[picked] = (y[picked] + shift) % n_classes
    return out



def split_size(fraction: float, n: int) -> int:
    """Rows a fraction of ``n`` takes, rounded up like sklearn (float noise removed first)."""
    return math.ceil(round(fraction * n, 6))


def split_indices(y: np.ndarray, n_val: int, n_test: int, seed: int, source: str,
                   classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train, val, test) row indices; test first, then val from the rest."""
    if len(y) == 0:
        raise DataError(f"{source}: data set is empty (0 rows)")
    present, counts = np.unique(y, return_counts=True)  # (C_present,)
    if classes and len(present) < 2:  # one class: cross-entropy is 0 from the start
        raise DataError(f"{source}: every row has the label '{classes[int(present[0])]}'; "
                        "classification needs at least 2 classes")
    n_train = len(y) - n_val - n_test
    advice = {"train": "lower data.val_fraction / data.test_fraction",
              "val": "raise data.val_fraction or use more data",
              "test": "raise data.test_fraction, set it to 0, or use more data"}
    for name, size in (("train", n_train), ("val", n_val), ("test", n_test)):
        if (size > 0 or name != "test") and size < len(present):
            what = f"{len(present)} classes" if classes else "regression"
            raise DataError(f"{source}: the {name} split would get {size} of {len(y)} rows for "
                            f"{what}; {advice[name]}")
    parts = 3 if n_test else 2
    if counts.min() < parts and classes:
        rare = classes[int(present[counts.argmin()])]
        raise DataError(f"{source}: class '{rare}' has only {counts.min()} example(s); a "
                        f"stratified split into {parts} parts needs at least {parts} per class")
    rng = np.random.default_rng(seed)
    rest, test = stratified_take(np.arange(len(y)), y, n_test, rng)
    train, val = stratified_take(rest, y, n_val, rng)
    return train, val, test


def stratified_take(idx: np.ndarray, y: np.ndarray, n_take: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices `idx` into (rest, take) with len(take) = n_take, each class taking
    its proportional share (largest remainder). Returned indices are sorted."""
    if n_take == 0:
        return np.sort(idx), idx[:0]
    _, inv = np.unique(y[idx], return_inverse=True)  # class position of each row
    counts = np.bincount(inv)  # (C,)
    exact = counts * n_take / len(idx)
    alloc = np.floor(exact).astype(np.int64)
    extra = np.argsort(-(exact - alloc), kind="stable")[: n_take - int(alloc.sum())]
    alloc[extra] += 1
    perm = rng.permutation(len(idx))  # shuffled positions; classes picked in this order
    take, rest = [], []
    for c, a in enumerate(alloc):
        rows = perm[inv[perm] == c]
        take.append(rows[:a])
        rest.append(rows[a:])
    return np.sort(idx[np.concatenate(rest)]), np.sort(idx[np.concatenate(take)])

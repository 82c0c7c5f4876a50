"""Data sets as tensors: load, split (seeded, stratified) and normalize.

Every split is returned whole, as one CPU tensor; the training loop batches it with a seeded
permutation (DESIGN.md, "Data"). Paths in `DataConfig` are used as given: the caller resolves
them relative to the experiment file.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnet_cli.config import SYNTHETIC_DATASETS, DataConfig
from fcnet_cli.engine.synthetic import synthetic
from fcnet_cli.errors import DataError

__all__ = ["DataSplits", "Normalization", "load_data"]

NORMALIZATIONS = ("standard", "minmax", "none")
SPLITS = ("train", "val", "test")
_SKLEARN = {"digits": "load_digits", "iris": "load_iris", "wine": "load_wine",
            "breast_cancer": "load_breast_cancer"}
_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST",
                "cifar10": "CIFAR10"}


@dataclass
class Normalization:
    """Per-feature affine scaling, ``x_normalized = (x - shift) / scale``."""

    kind: str
    shift: torch.Tensor  # (F,) float32
    scale: torch.Tensor  # (F,) float32, never 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` of shape (N, F); returns a new float32 tensor on ``x``'s device."""
        if x.shape[-1] != self.shift.numel():
            raise DataError(f"normalization expects {self.shift.numel()} features, "
                            f"data has {x.shape[-1]}")
        return (x - self.shift.to(x.device)) / self.scale.to(x.device)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """In-place `apply` for a float32 tensor the caller owns (no extra copy)."""
        if x.shape[-1] != self.shift.numel():
            raise DataError(f"normalization expects {self.shift.numel()} features, "
                            f"data has {x.shape[-1]}")
        return x.sub_(self.shift.to(x.device)).div_(self.scale.to(x.device))

    def to_json(self) -> dict:
        """Plain-JSON form: ``{"kind": ..., "shift": [floats], "scale": [floats]}``."""
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> Normalization:
        """Rebuild from `to_json` output.

        Raises:
            DataError: if ``d`` is not a well-formed normalization dict.
        """
        if not isinstance(d, dict) or set(d) != {"kind", "shift", "scale"}:
            raise DataError(f"normalization must be a dict with keys kind, shift, scale "
                            f"(got {d!r:.80})")
        if d["kind"] not in NORMALIZATIONS:
            raise DataError(f"normalization kind must be one of {NORMALIZATIONS} "
                            f"(got {d['kind']!r})")
        vectors = []
        for key in ("shift", "scale"):
            v = d[key]
            if not isinstance(v, list) or not all(
                    isinstance(a, (int, float)) and not isinstance(a, bool) for a in v):
                raise DataError(f"normalization {key} must be a list of numbers")
            vectors.append(torch.tensor(v, dtype=torch.float32).reshape(-1))  # (F,)
        shift, scale = vectors
        if shift.numel() != scale.numel():
            raise DataError(f"normalization shift has {shift.numel()} values, "
                            f"scale has {scale.numel()}")
        if not (torch.isfinite(shift).all() and torch.isfinite(scale).all()) or (scale == 0).any():
            raise DataError("normalization shift/scale must be finite and scale non-zero")
        return cls(d["kind"], shift, scale)

    @classmethod
    def fit(cls, kind: str, x_train: torch.Tensor) -> Normalization:
        """Fit on the training split (N, F) only.

        Args:
            kind: ``standard`` (mean / population std), ``minmax`` (min / max − min) or ``none``.
            x_train: training features, (N, F) float.

        Returns:
            The fitted normalization; constant features get scale 1.
        """
        x = x_train.detach().to("cpu", torch.float32)  # (N, F); pairwise sums keep it stable
        lo, hi = x.amin(0), x.amax(0)  # (F,)
        if kind == "standard":
            scale, shift = torch.std_mean(x, 0, correction=0)
        elif kind == "minmax":
            shift, scale = lo, hi - lo
        elif kind == "none":
            shift, scale = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
        else:
            raise DataError(f"normalization kind must be one of {NORMALIZATIONS} (got {kind!r})")
        # exact test for constant columns: a float std of identical values may be ~1e-17, not 0
        scale = torch.where((hi == lo) | (scale == 0), torch.ones_like(scale), scale)
        return cls(kind, shift.float(), scale.float())


@dataclass
class DataSplits:
    """The three splits as whole tensors: features (N, F) float32 normalized, labels (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor  # may have 0 rows (test_fraction 0)
    y_test: torch.Tensor
    classes: list[str]  # index = label
    normalization: Normalization

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)`` of the split ``train``, ``val`` or ``test``."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (got {name!r})")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def to(self, device: torch.device | str) -> DataSplits:
        """A copy with every split on ``device`` (the normalization stays on the CPU)."""
        moved = {f"{p}_{s}": getattr(self, f"{p}_{s}").to(device) for p in "xy" for s in SPLITS}
        return replace(self, **moved)


def load_data(cfg: DataConfig, normalization: Normalization | None = None) -> DataSplits:
    """Load, split (seeded, stratified) and normalize.

    Args:
        cfg: the ``data`` section of the experiment.
        normalization: used instead of fitting a new one (e.g. from a checkpoint).

    Returns:
        The splits on the CPU; the same ``cfg`` always gives the same splits.

    Raises:
        DataError: the data set is missing, malformed or too small to split.
    """
    if cfg.dataset in _TORCHVISION:
        # official train/test split; val is carved from the training pool
        x_pool, y_pool, x_test, y_test, classes, source = _load_torchvision(cfg)
        n_val = _count(cfg.val_fraction, len(y_pool))
        train, val, _ = _split_indices(y_pool, classes, n_val, 0, cfg.split_seed, source)
    else:
        x_pool, y_pool, classes, source = _load_table(cfg)
        n = len(y_pool)
        n_val, n_test = _count(cfg.val_fraction, n), _count(cfg.test_fraction, n)
        train, val, test = _split_indices(y_pool, classes, n_val, n_test, cfg.split_seed, source)
        x_test, y_test = x_pool[test], y_pool[test]
    x_train, x_val = _to_float(x_pool[train]), _to_float(x_pool[val])  # (N_split, F)
    x_test = _to_float(x_test)
    if normalization is None:
        normalization = Normalization.fit(cfg.normalize, x_train)
    elif normalization.shift.numel() != x_train.shape[1]:
        raise DataError(f"{source}: has {x_train.shape[1]} features but the normalization "
                        f"expects {normalization.shift.numel()}")
    y_train = _with_label_noise(y_pool[train], len(classes), cfg.label_noise, cfg.split_seed)
    return DataSplits(  # the float copies are ours: normalize them in place
        normalization.apply_(x_train), _labels(y_train),
        normalization.apply_(x_val), _labels(y_pool[val]),
        normalization.apply_(x_test), _labels(y_test),
        classes, normalization)


# ----------------------------------------------------------------------------- splitting


def _with_label_noise(y: np.ndarray, n_classes: int, fraction: float, seed: int) -> np.ndarray:
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



def _count(fraction: float, n: int) -> int:
    """Rows a fraction of ``n`` takes, rounded up like sklearn (float noise removed first)."""
    return math.ceil(round(fraction * n, 6))


def _split_indices(y: np.ndarray, classes: list[str], n_val: int, n_test: int, seed: int,
                   source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train, val, test) row indices; test first, then val from the rest."""
    if len(y) == 0:
        raise DataError(f"{source}: data set is empty (0 rows)")
    present, counts = np.unique(y, return_counts=True)  # (C_present,)
    n_train = len(y) - n_val - n_test
    advice = {"train": "lower data.val_fraction / data.test_fraction",
              "val": "raise data.val_fraction or use more data",
              "test": "raise data.test_fraction, set it to 0, or use more data"}
    for name, size in (("train", n_train), ("val", n_val), ("test", n_test)):
        if (size > 0 or name != "test") and size < len(present):
            raise DataError(f"{source}: the {name} split would get {size} of {len(y)} rows for "
                            f"{len(present)} classes; {advice[name]}")
    parts = 3 if n_test else 2
    if counts.min() < parts:
        rare = classes[int(present[counts.argmin()])]
        raise DataError(f"{source}: class '{rare}' has only {counts.min()} example(s); a "
                        f"stratified split into {parts} parts needs at least {parts} per class")
    rng = np.random.default_rng(seed)
    rest, test = _stratified_take(np.arange(len(y)), y, n_test, rng)
    train, val = _stratified_take(rest, y, n_val, rng)
    return train, val, test


def _stratified_take(idx: np.ndarray, y: np.ndarray, n_take: int, rng: np.random.Generator
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


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """Images stay uint8 until split (4x less copying); they become float32 in [0, 1]."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(y, dtype=torch.int64)  # (N,)


# ----------------------------------------------------------------------------- loaders


def _load_table(cfg: DataConfig) -> tuple[torch.Tensor, np.ndarray, list[str], str]:
    """sklearn / CSV / NPZ → features (N, F) float32, labels (N,) int64, classes, source."""
    if cfg.dataset in SYNTHETIC_DATASETS:
        x, y, classes = synthetic(cfg)
        source = f"{cfg.dataset} ({cfg.samples} points, seed {cfg.split_seed})"
    elif cfg.dataset in _SKLEARN:
        import sklearn.datasets  # lazy: bundled files, no network

        bunch = getattr(sklearn.datasets, _SKLEARN[cfg.dataset])()
        x, y = np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int64)
        classes, source = [str(c) for c in bunch.target_names], str(cfg.dataset)
    else:
        path = _existing_file(cfg.path or "")
        source = str(path)
        x, y, classes = _read_csv(path, cfg.target) if cfg.dataset == "csv" else _read_npz(path)
    features = torch.as_tensor(x, dtype=torch.float32)  # (N, F); checked after the cast
    bad = int((~torch.isfinite(features)).any(dim=1).sum())
    if bad:
        raise DataError(f"{source}: {bad} of {len(y)} rows have NaN or inf features")
    return features, y, classes, source


def _existing_file(name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _read_csv(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Header row + numeric feature columns + the label column ``target``."""
    rows: list[list[str]] = []
    lines: list[int] = []  # file line number of each row, for error messages
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if header is not None and len(row) != len(header):
                    raise DataError(f"{path}: line {reader.line_num} has {len(row)} fields, "
                                    f"the header has {len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV ({e})") from e
    if header is None:
        raise DataError(f"{path}: file is empty (no header row)")
    names = [h.strip() for h in header]
    if target not in names:
        raise DataError(f"{path}: no label column '{target}' (columns: {', '.join(names)}); "
                        f"set data.target")
    if not rows:
        raise DataError(f"{path}: data set is empty (0 rows)")
    cells = np.char.strip(np.array(rows, dtype=str))  # (N, columns)
    t = names.index(target)
    feature_cols = [j for j in range(len(names)) if j != t]
    if not feature_cols:
        raise DataError(f"{path}: no feature columns besides '{target}'")
    try:
        x = cells[:, feature_cols].astype(np.float64)  # (N, F)
    except ValueError:
        i, j = _first_non_number(cells[:, feature_cols])
        raise DataError(f"{path}: line {lines[i]}, column '{names[feature_cols[j]]}': "
                        f"{cells[i, feature_cols[j]]!r} is not a number") from None
    labels = cells[:, t]  # (N,) str
    if (labels == "").any():
        raise DataError(f"{path}: line {lines[int((labels == '').argmax())]}: empty label")
    try:
        as_num = labels.astype(np.float64)
        integral = bool(np.isfinite(as_num).all() and (as_num == np.round(as_num)).all())
    except ValueError:
        integral = False
    # integer labels sort numerically (2 before 10), string labels lexicographically
    uniq, y = np.unique(as_num.astype(np.int64) if integral else labels, return_inverse=True)
    return x, y.reshape(-1).astype(np.int64), [str(c) for c in uniq]


def _first_non_number(cells: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first cell numpy cannot parse; error path only."""
    for i, row in enumerate(cells):
        for j, v in enumerate(row):
            try:
                np.array([v]).astype(np.float64)
            except ValueError:
                return i, j
    return 0, 0  # unreachable when the whole-array parse failed


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Arrays ``x`` (N, ...) flattened to (N, F) and ``y`` (N,) integer labels ≥ 0."""
    try:
        archive: Any = np.load(path, allow_pickle=False)  # never unpickle user files
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: expected an .npz archive with arrays x and y")
        with archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)} "
                                f"(found: {', '.join(archive.files) or 'none'})")
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({str(e).splitlines()[0]})") from e
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise DataError(f"{path}: x must be a numeric array (N, ...) (got {x.dtype} {x.shape})")
    if y.ndim != 1:
        raise DataError(f"{path}: y must have shape (N,) (got {y.shape})")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)} labels")
    x = x.reshape(len(x), -1).astype(np.float64)  # (N, F)
    ok = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool(
        np.isfinite(y).all() and (y == np.round(y)).all()))
    if len(y) and (not ok or y.min() < 0):
        raise DataError(f"{path}: labels out of range: y must hold integers >= 0 "
                        f"(got dtype {y.dtype}, min {y.min()})")
    y = y.astype(np.int64)
    return x, y, [str(i) for i in range(y.max() + 1 if len(y) else 0)]


def _load_torchvision(cfg: DataConfig) -> tuple[torch.Tensor, np.ndarray, torch.Tensor,
                                                np.ndarray, list[str], str]:
    """Official train pool and test split as uint8 (N, F) images, labels, classes, source."""
    import torchvision.datasets  # lazy: only these data sets need it

    cls = getattr(torchvision.datasets, _TORCHVISION[cfg.dataset])
    root = Path(cfg.root).expanduser()
    source = f"{cfg.dataset} ({root})"
    if root.exists() and not root.is_dir():
        raise DataError(f"{source}: data.root {root} is not a folder")
    try:
        sets = [cls(str(root), train=train, download=cfg.download) for train in (True, False)]
    except Exception as e:  # torchvision raises RuntimeError, or anything on corrupt files
        if not cfg.download and "not found" in str(e).lower():
            raise DataError(f"{cfg.dataset}: files not found under {root}; set "
                            f"data.download: true to fetch them") from e
        what = "download" if cfg.download else "read"
        raise DataError(f"{source}: cannot {what} the data set "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    out: list[Any] = []
    for ds in sets:
        # MNIST family: uint8 tensor (N, 28, 28); CIFAR10: uint8 numpy (N, 32, 32, 3)
        x = torch.as_tensor(ds.data)
        out += [x.reshape(len(x), -1), np.asarray(ds.targets, dtype=np.int64)]
    return out[0], out[1], out[2], out[3], [str(c) for c in sets[0].classes], source

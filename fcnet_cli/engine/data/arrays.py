"""Data sets that arrive as arrays: scikit-learn's bundled sets, the synthetic 2-D sets, NPZ
files and torchvision's image sets (the train pool and the official test split).

Features come back as one (N, F) tensor, labels as numpy; splitting and normalization are
`engine.data.load`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnet_cli.config import REGRESSION_DATASETS, SYNTHETIC_DATASETS, DataConfig
from fcnet_cli.engine.data.catalog import SKLEARN, TORCHVISION
from fcnet_cli.engine.data.reader import read_npz
from fcnet_cli.engine.data.synthetic import synthetic
from fcnet_cli.engine.data.tables import Target, existing_file
from fcnet_cli.errors import DataError

__all__ = ["load_arrays", "load_torchvision"]


def load_arrays(cfg: DataConfig, task: str | None
                 ) -> tuple[torch.Tensor, np.ndarray, Target, str]:
    """sklearn / synthetic / NPZ → features (N, F) float32, targets (N,) or (N, T), target,
    source."""
    y: np.ndarray
    if cfg.dataset in SYNTHETIC_DATASETS:
        x, y, classes = synthetic(cfg)
        target = Target("classification", [], classes)
        source = f"{cfg.dataset} ({cfg.samples} points, seed {cfg.split_seed})"
    elif cfg.dataset in SKLEARN:
        import sklearn.datasets  # lazy: bundled files, no network

        bunch = getattr(sklearn.datasets, SKLEARN[cfg.dataset].loader)()
        x, source = np.asarray(bunch.data, np.float64), str(cfg.dataset)
        if task == "regression":
            y = np.asarray(bunch.target, np.float64)
            target = Target("regression", ["target"])
        else:
            if cfg.dataset in REGRESSION_DATASETS:
                raise DataError(f"{cfg.dataset}: is a regression data set; remove task: "
                                f"classification")
            y = np.asarray(bunch.target, np.int64)
            target = Target("classification", [], [str(c) for c in bunch.target_names])
    else:
        path = existing_file(cfg.path or "")
        source = str(path)
        x, y, target = _read_npz(path, task)
    features = torch.as_tensor(x, dtype=torch.float32)  # (N, F); checked after the cast
    bad = int((~torch.isfinite(features)).any(dim=1).sum())
    if bad:
        raise DataError(f"{source}: {bad} of {len(y)} rows have NaN or inf features")
    return features, y, target, source


def _read_npz(path: Path, task: str | None) -> tuple[np.ndarray, np.ndarray, Target]:
    """Arrays ``x`` (N, ...) flattened to (N, F) and ``y``: (N,) integer labels ≥ 0, or for
    regression (N,) / (N, T) numbers."""
    arrays = read_npz(path, ("x", "y"), keep=("x", "y"))
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise DataError(f"{path}: x must be a numeric array (N, ...) (got {x.dtype} {x.shape})")
    if y.ndim != 1 and not (task == "regression" and y.ndim == 2):
        raise DataError(f"{path}: y must have shape (N,) (got {y.shape})")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)} labels")
    x = x.reshape(len(x), -1).astype(np.float64)  # (N, F)
    if task == "regression":
        if y.dtype.kind not in "biuf" or not np.isfinite(y).all():
            raise DataError(f"{path}: task: regression needs finite numbers in y "
                            f"(got dtype {y.dtype})")
        cols = ["y"] if y.ndim == 1 else [f"y_{i}" for i in range(y.shape[1])]
        return x, y.astype(np.float64), Target("regression", cols)
    ok = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool(
        np.isfinite(y).all() and (y == np.round(y)).all()))
    if len(y) and (not ok or y.min() < 0):
        raise DataError(f"{path}: labels out of range: y must hold integers >= 0 "
                        f"(got dtype {y.dtype}, min {y.min()})")
    y = y.astype(np.int64)
    return x, y, Target("classification", [], [str(i) for i in range(y.max() + 1 if len(y)
                                                                      else 0)])


def load_torchvision(cfg: DataConfig) -> tuple[torch.Tensor, np.ndarray, torch.Tensor,
                                                np.ndarray, Target, str]:
    """Official train pool and test split as uint8 (N, F) images, labels, classes, source."""
    import torchvision.datasets  # lazy: only these data sets need it

    cls = getattr(torchvision.datasets, TORCHVISION[cfg.dataset].loader)
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
    target = Target("classification", [], [str(c) for c in sets[0].classes])
    return out[0], out[1], out[2], out[3], target, source

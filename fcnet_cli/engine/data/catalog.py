"""The built-in data sets: where they come from, their shape, and whether they are on disk.

No torch and no data loading here: `fcnet datasets` answers from file checks alone
(`tests/test_catalog.py` checks the shapes against the real loaders).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["DatasetInfo", "builtin_datasets"]


@dataclass
class DatasetInfo:
    """One built-in data set as `fcnet datasets` lists it."""

    name: str
    source: str
    rows: int
    features: int
    classes: int | None  # None: regression
    available: bool  # readable offline right now
    location: str  # the files it is read from, or what is missing

    @property
    def task(self) -> str:
        return "regression" if self.classes is None else "classification"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "task": self.task}


# name -> (bundled file(s) under sklearn/datasets/data, rows, features, classes)
_SKLEARN: dict[str, tuple[tuple[str, ...], int, int, int | None]] = {
    "digits": (("digits.csv.gz",), 1797, 64, 10),
    "iris": (("iris.csv",), 150, 4, 3),
    "wine": (("wine_data.csv",), 178, 13, 3),
    "breast_cancer": (("breast_cancer.csv",), 569, 30, 2),
    "diabetes": (("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"), 442, 10, None),
}
# name -> (folder under data.root, files that must exist there, rows (train + test), features)
_TORCHVISION: dict[str, tuple[str, tuple[str, ...], int, int]] = {
    "mnist": ("MNIST/raw", ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"), 70000, 784),
    "fashion_mnist": ("FashionMNIST/raw", ("train-images-idx3-ubyte",
                                           "t10k-images-idx3-ubyte"), 70000, 784),
    "kmnist": ("KMNIST/raw", ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"), 70000, 784),
    "cifar10": ("cifar-10-batches-py", ("data_batch_1", "test_batch"), 60000, 3072),
}


def _sklearn_data_dir() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def builtin_datasets(root: str | Path = "data") -> list[DatasetInfo]:
    """Every built-in data set; torchvision sets are looked for under `root` (data.root)."""
    out = []
    sk = _sklearn_data_dir()
    for name, (files, rows, features, classes) in _SKLEARN.items():
        ok = sk is not None and all((sk / f).is_file() for f in files)
        where = str(sk / files[0]) if sk is not None else "scikit-learn is not installed"
        out.append(DatasetInfo(name, "scikit-learn (bundled)", rows, features, classes, ok,
                               where))
    vision = importlib.util.find_spec("torchvision") is not None
    for name, (folder, files, rows, features) in _TORCHVISION.items():
        path = Path(root).expanduser() / folder
        ok = vision and all((path / f).is_file() for f in files)
        where = str(path) if ok else (f"not under {path} (data.download: true fetches it)"
                                      if vision else "torchvision is not installed")
        out.append(DatasetInfo(name, "torchvision (data.root)", rows, features, 10, ok, where))
    return out

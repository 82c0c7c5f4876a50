"""The built-in data sets: the one registry of where they come from (the loader `load.py`
calls), their shape, and whether they are on disk.

No torch and no data loading here: `fcnet datasets` answers from file checks alone
(`tests/test_tasks.py` checks the shapes against the real loaders, and the schema's
`Dataset` names against this registry).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["SKLEARN", "TORCHVISION", "DatasetInfo", "Sklearn", "Torchvision",
           "builtin_datasets"]


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


@dataclass(frozen=True)
class Sklearn:
    """A data set bundled with scikit-learn: `sklearn.datasets.<loader>()`."""

    loader: str
    files: tuple[str, ...]  # bundled file(s) under sklearn/datasets/data
    rows: int
    features: int
    classes: int | None  # None: regression


@dataclass(frozen=True)
class Torchvision:
    """An image set read by `torchvision.datasets.<loader>` from data.root."""

    loader: str
    folder: str  # under data.root
    files: tuple[str, ...]  # that must exist there
    rows: int  # train + test
    features: int


_MNIST_FILES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
SKLEARN: dict[str, Sklearn] = {
    "digits": Sklearn("load_digits", ("digits.csv.gz",), 1797, 64, 10),
    "iris": Sklearn("load_iris", ("iris.csv",), 150, 4, 3),
    "wine": Sklearn("load_wine", ("wine_data.csv",), 178, 13, 3),
    "breast_cancer": Sklearn("load_breast_cancer", ("breast_cancer.csv",), 569, 30, 2),
    "diabetes": Sklearn("load_diabetes", ("diabetes_data_raw.csv.gz",
                                          "diabetes_target.csv.gz"), 442, 10, None),
}
TORCHVISION: dict[str, Torchvision] = {
    "mnist": Torchvision("MNIST", "MNIST/raw", _MNIST_FILES, 70000, 784),
    "fashion_mnist": Torchvision("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES, 70000, 784),
    "kmnist": Torchvision("KMNIST", "KMNIST/raw", _MNIST_FILES, 70000, 784),
    "cifar10": Torchvision("CIFAR10", "cifar-10-batches-py", ("data_batch_1", "test_batch"),
                           60000, 3072),
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
    for name, s in SKLEARN.items():
        ok = sk is not None and all((sk / f).is_file() for f in s.files)
        where = str(sk / s.files[0]) if sk is not None else "scikit-learn is not installed"
        out.append(DatasetInfo(name, "scikit-learn (bundled)", s.rows, s.features, s.classes,
                               ok, where))
    vision = importlib.util.find_spec("torchvision") is not None
    for name, t in TORCHVISION.items():
        path = Path(root).expanduser() / t.folder
        ok = vision and all((path / f).is_file() for f in t.files)
        where = str(path) if ok else (f"not under {path} (data.download: true fetches it)"
                                      if vision else "torchvision is not installed")
        out.append(DatasetInfo(name, "torchvision (data.root)", t.rows, t.features, 10, ok,
                               where))
    return out

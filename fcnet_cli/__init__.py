"""fcnet: train, evaluate and sweep fully connected networks from a YAML file.

The public Python API; every command is a few lines over it::

    from fcnet_cli import load_experiment, train
    result = train(load_experiment("experiments/digits.yaml"))
    model = load_model(result.run_dir)          # predict / predict_proba, scikit-learn style
    clf = FCNetClassifier(hidden=[64]).fit(X, y)  # scikit-learn estimators (and FCNetRegressor)

Names are imported on first use so that `import fcnet_cli` (and `fcnet --help`) stays free of
torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "FCNetClassifier",
    "FCNetRegressor",
    "__version__",
    "load_experiment",
    "load_model",
    "load_sweep",
    "run_sweep",
    "train",
]

_LAZY = {
    "FCNetClassifier": "fcnet_cli.estimators",
    "FCNetRegressor": "fcnet_cli.estimators",
    "load_experiment": "fcnet_cli.config",
    "train": "fcnet_cli.engine.train.loop",
    "load_model": "fcnet_cli.serve.model",
    "load_sweep": "fcnet_cli.sweep.load",
    "run_sweep": "fcnet_cli.sweep.run",
}


def _version() -> str:
    """The installed distribution's version (importlib.metadata: looked up on first use, it
    costs a start-up that predict and eval do not need)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fcnet")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()["__version__"] = value = _version()
        return value
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fcnet_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""One experiment builder for the tests: a test module's defaults, then the test's changes.

    WINE = {"data": {"dataset": "wine"}, "model": {"hidden": [16]}, "training": {"seed": 5}}
    exp = experiment(WINE, tmp_path / "runs", "loss", loss={"class_weights": "balanced"})

Every experiment trains on the CPU in batches of 16 unless its defaults or changes say
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcnet_cli.config import Experiment

__all__ = ["experiment"]

COMMON: dict[str, Any] = {"training": {"batch_size": 16, "device": "cpu"}}


def experiment(defaults: Mapping[str, Any], out: Path, name: str, **sections: Any) -> Experiment:
    """`COMMON`, then `defaults`, then `sections`, written under `out` as run `name`.

    Each layer merges section by section: a dict updates its section's keys, any other
    value (a task name, say) replaces the key.
    """
    raw: dict[str, Any] = {}
    for layer in (COMMON, defaults, sections, {"output": {"dir": str(out), "name": name}}):
        for key, value in layer.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return Experiment.model_validate(raw)

"""The run directory's layout: every file and folder name fcnet writes in a run, spelled once.

    runs/<experiment-name>/<run-id>/          RunDir(path)
      config.yaml  metrics.csv  summary.json  .config, .metrics, .summary
      .lock                                   .lock (the run-dir lock, `files.RunLock`)
      checkpoints/best -> .best-<seq>/        .checkpoint("best"): model.safetensors, meta.json
      checkpoints/last -> .last-<seq>/        .checkpoint("last"): the same + train_state.pt
      checkpoints/manifest.json               .manifest
    a seed group (`training.seeds: N`):       group.json, config.yaml, seed-<s>/ per seed
    an ensemble (`model.ensemble: N`):        a run directory + members/seed-<s>/ per member

Torch-free: `fcnet compare`, tracking and the CLI's fast paths read runs through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import overload

__all__ = ["RunDir"]


class _Under:
    """A path under a run directory, spelled once: on an instance, `run_dir.path / *parts`."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, obj: None, owner: type) -> _Under: ...
    @overload
    def __get__(self, obj: RunDir, owner: type) -> Path: ...
    def __get__(self, obj: RunDir | None, owner: type) -> _Under | Path:
        return self if obj is None else obj.path.joinpath(*self.parts)


class RunDir:
    """A run directory (or a seed group's folder) and the paths of the files in it.

    The class attributes are the names; the properties and methods join them to `path`.
    """

    CONFIG = "config.yaml"
    METRICS = "metrics.csv"
    SUMMARY = "summary.json"
    LOCK = ".lock"
    CHECKPOINTS = "checkpoints"
    BEST, LAST = "best", "last"
    WHICH = (BEST, LAST)  # the checkpoints a run keeps
    MANIFEST = "manifest.json"
    WEIGHTS = "model.safetensors"
    META = "meta.json"
    TRAIN_STATE = "train_state.pt"
    GROUP = "group.json"  # a seed group's record (engine.train.group)
    MEMBERS = "members"  # an ensemble's member runs (engine.train.ensemble)
    SEED_PREFIX = "seed-"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # the paths: RunDir(p).config is p/config.yaml, RunDir(p).manifest p/checkpoints/manifest.json
    config = _Under(CONFIG)
    metrics = _Under(METRICS)
    summary = _Under(SUMMARY)
    lock = _Under(LOCK)
    checkpoints = _Under(CHECKPOINTS)
    manifest = _Under(CHECKPOINTS, MANIFEST)
    group = _Under(GROUP)
    members = _Under(MEMBERS)

    def checkpoint(self, which: str = BEST) -> Path:
        """`checkpoints/best` or `checkpoints/last` (a symbolic link to the live directory)."""
        return self.checkpoints / which

    def meta(self, which: str = BEST) -> Path:
        """The meta.json of checkpoint `which`."""
        return self.checkpoint(which) / self.META

    @classmethod
    def seed_name(cls, seed: int) -> str:
        """The folder of seed `seed` in a group or an ensemble: "seed-3"."""
        return f"{cls.SEED_PREFIX}{seed}"

    def seed(self, seed: int) -> Path:
        """A seed group's run directory for `seed`."""
        return self.path / self.seed_name(seed)

    def member(self, seed: int) -> Path:
        """An ensemble's member run directory for `seed`."""
        return self.members / self.seed_name(seed)

    def is_run(self) -> bool:
        """Holds a config.yaml: a run directory, a seed group or an ensemble."""
        return self.config.is_file()

    def is_group(self) -> bool:
        return self.group.is_file()

    def is_ensemble(self) -> bool:
        return self.members.is_dir() and self.config.is_file()

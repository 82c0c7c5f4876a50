"""Which checkpoint a path names: a checkpoint directory or its weights file, a run directory
(→ its best checkpoint), a seed group (→ its best seed's), with `runs/NAME/latest` resolved
anywhere in the path. The one resolver behind `load_checkpoint`, `load_model`, `fcnet eval`,
`predict` and `export`. Torch-free.

    found = locate_checkpoint(Path("runs/digits/latest"))
    found.dir        # .../<run-id>/checkpoints/best
    found.seed       # a seed group's chosen seed (BestSeed: say why), else None
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fcnet_cli.engine.store.files import resolve_latest
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.seedpick import BestSeed, best_seed, is_group_dir
from fcnet_cli.errors import CheckpointError

__all__ = ["Located", "checkpoint_dir", "locate_checkpoint"]


@dataclass(frozen=True)
class Located:
    """A checkpoint directory, and the seed chosen when the path named a seed group."""

    dir: Path
    seed: BestSeed | None = None
    group: Path | None = None  # the seed group `seed` was chosen from

    def seed_line(self) -> str | None:
        """The line saying which seed of the group stands for it (None: not a group)."""
        return None if self.seed is None or self.group is None else self.seed.line(self.group)


def locate_checkpoint(path: str | Path) -> Located:
    """The checkpoint `path` names, `latest` resolved, a seed group's best seed chosen.

    Raises:
        CheckpointError: no such path, or no checkpoint in it.
        UsageError: a seed group none of whose seeds has a checkpoint yet; no runs behind
            `latest`.
    """
    where = resolve_latest(path)
    if is_group_dir(where):
        chosen = best_seed(where)
        return Located(checkpoint_dir(chosen.run_dir), chosen, where)
    return Located(checkpoint_dir(where))


def checkpoint_dir(path: Path) -> Path:
    """A checkpoint directory, its model.safetensors, or a run directory (→ checkpoints/best).

    Raises:
        CheckpointError: one line naming the path and what is wrong with it.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_file():
        if path.name != RunDir.WEIGHTS:
            raise CheckpointError(f"{path}: not a checkpoint (expected a checkpoint directory, "
                                  f"its {RunDir.WEIGHTS}, or a run directory)")
        return path.parent
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a regular file or directory")
    if (path / RunDir.WEIGHTS).exists() or (path / RunDir.META).exists():
        return path
    run = RunDir(path)
    best = run.checkpoint(RunDir.BEST)
    if run.is_run() and run.checkpoints.is_dir():
        if best.is_symlink() and not best.exists():
            raise CheckpointError(f"{best}: a broken or looping symbolic link "
                                  f"(-> {os.readlink(best)}); the run's checkpoints are damaged")
        if not best.is_dir():
            raise CheckpointError(f"{path}: the run has no best checkpoint yet "
                                  f"(no epoch completed)")
    if best.is_dir():
        return best
    if run.is_group():
        raise CheckpointError(f"{path}: a seed group, not one checkpoint: give one of its seeds "
                              f"({path.name}/{RunDir.SEED_PREFIX}N), or the group to fcnet "
                              "eval, predict, export or load_model (they use its best seed)")
    raise CheckpointError(f"{path}: no checkpoint in this directory (expected "
                          f"{RunDir.WEIGHTS} and {RunDir.META}, or "
                          f"{RunDir.CHECKPOINTS}/{RunDir.BEST})")

"""Optional TensorBoard logging: the scalars of metrics.csv as TensorBoard event files.

Needs the `tensorboard` extra (`pip install -e ".[tensorboard]"`). `train` and
`train_population` add the logger themselves for members with `output.tensorboard: true`
(`loggers_for`), so a run started from Python logs like one started by `fcnet train` or a
sweep. Each member writes to `<run dir>/tensorboard/`, one point per epoch:

    loss/train, loss/val, accuracy/train, accuracy/val, gap/accuracy, gap/loss, lr, seconds,
    weights/l2_norm_<layer>, weights/l1_norm_<layer>, weights/sparsity_<layer>

    tensorboard --logdir runs/digits
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from fcnet_cli.config import Experiment
from fcnet_cli.errors import UsageError
from fcnet_cli.events import Callback, EpochMetrics, RunResult, RunStart

__all__ = ["LOG_SUBDIR", "TensorBoardLogger", "available", "loggers_for", "scalar_tags"]

LOG_SUBDIR = "tensorboard"
_TAGS = {
    "train_loss": "loss/train", "val_loss": "loss/val",
    "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val",
    "gap_accuracy": "gap/accuracy", "gap_loss": "gap/loss", "lr": "lr", "seconds": "seconds",
}


def available() -> bool:
    """Is the `tensorboard` package (which torch.utils.tensorboard needs) importable?"""
    return importlib.util.find_spec("tensorboard") is not None


def scalar_tags(m: EpochMetrics) -> dict[str, float]:
    """TensorBoard tag -> value for one epoch: every metrics.csv column but `epoch`."""
    out: dict[str, float] = {}
    for key, value in m.row().items():
        if key == "epoch":
            continue
        out[_TAGS.get(key, f"weights/{key}")] = float(value)
    return out


def _summary_writer(log_dir: str) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)


class TensorBoardLogger(Callback):
    """Writes the per-epoch scalars of `members` (default: all) under `<run dir>/tensorboard/`.

    Members without a run directory are skipped. Call `close()` when training ends (the
    writers of members that end are closed as they end).
    """

    def __init__(self, members: Collection[int] | None = None) -> None:
        if not available():
            raise UsageError("TensorBoard logging needs the tensorboard package: "
                             "pip install 'fcnet[tensorboard]'")
        self.members = None if members is None else set(members)
        self._writers: dict[int, Any] = {}

    def on_run_start(self, start: RunStart) -> None:
        self.close()
        for member, run_dir in enumerate(start.run_dirs):
            if run_dir and (self.members is None or member in self.members):
                self._writers[member] = _summary_writer(str(Path(run_dir) / LOG_SUBDIR))

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        for m in metrics:
            writer = self._writers.get(m.member)
            if writer is None:
                continue
            for tag, value in scalar_tags(m).items():
                writer.add_scalar(tag, value, global_step=m.epoch)
            writer.flush()

    def on_member_end(self, member: int, result: RunResult) -> None:
        writer = self._writers.pop(member, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def loggers_for(exps: Sequence[Experiment]) -> list[TensorBoardLogger]:
    """The loggers the members' `output` sections ask for (member k of `exps` is member k).

    Raises UsageError when one needs a package that is not installed.
    """
    wanted = [k for k, e in enumerate(exps) if e.output.tensorboard]
    return [TensorBoardLogger(wanted)] if wanted else []

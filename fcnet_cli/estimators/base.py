"""What both estimators share: fit on an in-memory table, the checkpoint held as bytes,
prediction through the serving `Model`, pickling and `save`.

    fit:      X, y -> one polars table -> build_experiment -> load_frame -> train -> checkpoint
    predict:  X -> the same table columns -> Model.features (the stored preprocessing) -> logits
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.load import load_frame
from fcnet_cli.engine.store.checkpoint import (
    checkpoint_files,
    checkpoint_from_files,
    write_checkpoint_files,
)
from fcnet_cli.engine.train.loop import train
from fcnet_cli.errors import DataError, RunError
from fcnet_cli.estimators.inputs import InputError, as_table
from fcnet_cli.estimators.params import build_experiment
from fcnet_cli.events import BatchProgress, Callback, EpochMetrics, RunResult, RunStart
from fcnet_cli.serve.model import Model

__all__ = ["FCNetEstimator", "free_name"]

SOURCE = "X"  # how data messages name the table passed to fit / predict


def free_name(base: str, taken: list[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... whichever no feature column has."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


class _Unnamed(Callback):
    """Forwards a display's events, without the name of a run directory that fit removes."""

    def __init__(self, shown: Callback) -> None:
        self.shown = shown

    def on_run_start(self, start: RunStart) -> None:
        self.shown.on_run_start(replace(start, run_dirs=[""] * len(start.run_dirs)))

    def on_batch_end(self, progress: BatchProgress) -> None:
        self.shown.on_batch_end(progress)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        self.shown.on_epoch_end(metrics)

    def on_member_end(self, member: int, result: RunResult) -> None:
        self.shown.on_member_end(member, result)


@contextlib.contextmanager
def _display(verbose: int, *, temporary: bool) -> Iterator[list[Callback]]:
    """verbose >= 1: the epoch table `fcnet train` shows (rich, imported only then)."""
    if not verbose:
        yield []
        return
    from fcnet_cli import display

    console = display.make_console()
    live = display.is_terminal(console)
    shown = display.LiveTrainDisplay(console) if live else display.PlainTrainDisplay(console)
    try:
        yield [_Unnamed(shown) if temporary else shown]
    finally:
        if isinstance(shown, display.LiveTrainDisplay):
            shown.close()


class FCNetEstimator(BaseEstimator):
    """The fit / predict / persistence shared by `FCNetClassifier` and `FCNetRegressor`.

    Subclasses set `_task`, `_fields` (parameter -> experiment field) and `_targets`.
    """

    _task: str
    _fields: Mapping[str, str]
    # parameters every subclass takes (set by its __init__)
    missing: str | None
    config: Any
    output_dir: str | Path | None
    verbose: int

    # ------------------------------------------------------------------ fit

    def _targets(self, y: Any, names: list[str]) -> tuple[pl.DataFrame, Any]:
        """y as target column(s) beside the feature columns `names`, and what predict needs
        to give y's form back (kept as `_y_info`)."""
        raise NotImplementedError

    def _fitted(self) -> None:
        """After `model_` and `_y_info` are set: what the subclass derives from them."""

    def fit(self, X: Any, y: Any) -> FCNetEstimator:
        """Train on X (pandas, polars, numpy) and y; the defaults are a minimal YAML's, but
        one model (a `config` with `model.ensemble` trains an ensemble).

        Split, preprocessing and training are `fcnet train`'s: `val_fraction` and
        `test_fraction` of the rows are held out, and the best epoch on the validation split
        is kept. Raises ValueError for bad parameters (the CLI's messages) and bad data.
        """
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, "
                             f"but the target y is None.")
        table = as_table(self, X, reset=True, allow_nan=self._allow_nan(), min_rows=2)
        check_consistent_length(table, y)
        targets, info = self._targets(y, table.columns)
        exp = build_experiment(type(self).__name__, self._fields, self.get_params(),
                               config=self.config, task=self._task, target=targets.columns,
                               output_dir=self.output_dir)
        files, result = self._train(exp, table.hstack(targets))
        self._checkpoint, self._y_info = files, info
        self.result_: RunResult = result
        self.run_dir_ = Path(result.run_dir) if self.output_dir is not None and \
            result.run_dir else None
        self._load()
        return self

    def _train(self, exp: Experiment, frame: pl.DataFrame) -> tuple[dict[str, bytes],
                                                                     RunResult]:
        with contextlib.ExitStack() as stack:
            run_dir = None
            if self.output_dir is None:  # the run directory lives only as long as fit
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="fcnet-fit-"))
                run_dir = Path(tmp) / "run"
            try:
                data = load_frame(frame, exp.data, task=exp.task, source=SOURCE)
            except DataError as e:
                raise InputError(str(e)) from None
            callbacks = stack.enter_context(_display(self.verbose, temporary=run_dir is not None))
            result = train(exp, data=data, run_dir=run_dir, callbacks=callbacks,
                           eager_checkpoints=run_dir is None)
            if result.best_epoch is None or result.run_dir is None:
                why = f" ({result.reason})" if result.reason else ""
                raise RunError(f"training ended {result.status}{why} before any epoch "
                               f"finished: no model to keep")
            if result.status == "diverged":  # a model exists: its last finite best epoch
                warnings.warn(f"training diverged ({result.reason}); the model kept is the "
                              f"best epoch before it, {result.best_epoch}",
                              ConvergenceWarning, stacklevel=3)
            return checkpoint_files(Path(result.run_dir)), result

    def _allow_nan(self) -> bool:
        return self.missing not in (None, "error")

    # ------------------------------------------------------------------ predict

    def _load(self) -> None:
        """The serving model of the held checkpoint bytes, through the safe loader."""
        ckpt = checkpoint_from_files(self._checkpoint, Path(type(self).__name__))
        self.model_ = Model(ckpt)
        self._fitted()

    def _features(self, X: Any) -> np.ndarray:
        """Model inputs (N, in_features) of X, encoded by the stored preprocessing."""
        check_is_fitted(self)
        table = as_table(self, X, reset=False, allow_nan=self._allow_nan())
        try:
            return self.model_.features(table, SOURCE)
        except DataError as e:
            raise InputError(str(e)) from None

    # ------------------------------------------------------------------ persistence

    @property
    def checkpoint_files_(self) -> dict[str, bytes]:
        """The checkpoint's files (model.safetensors, meta.json) as `fcnet` writes them."""
        check_is_fitted(self)
        return dict(self._checkpoint)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write an ordinary fcnet checkpoint directory, for `fcnet eval / predict / export`
        and `load_model`. An existing non-empty `path` needs `overwrite=True`."""
        check_is_fitted(self)
        path = Path(path)
        if path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it")
        return write_checkpoint_files(path, self._checkpoint)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("model_", None)  # rebuilt from the checkpoint bytes on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "_checkpoint" in state:
            self._load()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan()
        tags.input_tags.categorical = True
        return tags


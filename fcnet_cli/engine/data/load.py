"""Data sets as tensors: load, split (seeded, stratified) and normalize.

Every split is returned whole, as one CPU tensor; the training loop batches it with a seeded
permutation (DESIGN.md, "Data"). Paths in `DataConfig` are used as given: the caller resolves
them relative to the experiment file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from fcnet_cli.config import (
    REGRESSION_DATASETS,
    SPLITS,
    TABLE_DATASETS,
    DataConfig,
)
from fcnet_cli.engine.data.arrays import load_arrays, load_torchvision
from fcnet_cli.engine.data.catalog import SKLEARN, TORCHVISION
from fcnet_cli.engine.data.columns import (
    drop_missing_target,
    encode_target,
    fit_columns,
    fit_target,
    select_columns,
)
from fcnet_cli.engine.data.csvformat import check_decimal_commas
from fcnet_cli.engine.data.leaks import leak_notices
from fcnet_cli.engine.data.lineage import data_lineage
from fcnet_cli.engine.data.splits import split_indices, split_size, with_label_noise
from fcnet_cli.engine.data.tables import (
    Column,
    Normalization,
    Preprocessing,
    Target,
    encode_frame,
    read_table,
)
from fcnet_cli.errors import DataError

__all__ = ["IN_MEMORY", "DataSplits", "Normalization", "Preprocessing", "load_data",
           "load_frame"]

IN_MEMORY = "<in-memory table>"  # data.path of a model fitted on a table `load_frame` was given


@dataclass
class DataSplits:
    """The three splits as whole tensors: features (N, F) float32 normalized; targets (N,)
    int64 class indices, or (N, T) float32 standardized regression targets."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor  # may have 0 rows (test_fraction 0)
    y_test: torch.Tensor
    preprocessing: Preprocessing  # fitted on the training split; stored with checkpoints
    notices: list[str] = field(default_factory=list)  # e.g. unseen categories in val/test
    lineage: dict[str, Any] | None = None  # the file trained on (engine.lineage); None: rebuilt

    @property
    def normalization(self) -> Normalization:
        return self.preprocessing.normalization

    @property
    def task(self) -> str:
        return self.preprocessing.target.task

    @property
    def classes(self) -> list[str]:
        """Class names, index = label ([] for regression)."""
        return list(self.preprocessing.target.classes)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        """Width of the model's last layer: classes, or regression targets."""
        return len(self.preprocessing.target.names)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)`` of the split ``train``, ``val`` or ``test``."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (got {name!r})")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def to(self, device: torch.device | str) -> DataSplits:
        """A copy with every split on ``device`` (the normalization stays on the CPU)."""
        moved = {f"{p}_{s}": getattr(self, f"{p}_{s}").to(device) for p in "xy" for s in SPLITS}
        return replace(self, **moved)


def load_data(cfg: DataConfig, normalization: Normalization | None = None, *,
              task: str | None = None, preprocessing: Preprocessing | None = None
              ) -> DataSplits:
    """Load, split (seeded; stratified for classification) and preprocess.

    Args:
        cfg: the ``data`` section of the experiment.
        normalization: used instead of fitting a new one (bundled, image and NPZ sets).
        task: the experiment's ``task`` (None: classification, or regression for ``diabetes``).
        preprocessing: used instead of fitting a new one (e.g. from a checkpoint).

    Returns:
        The splits on the CPU; the same ``cfg`` always gives the same splits.

    Raises:
        DataError: the data set is missing, malformed or too small to split.
    """
    splits = _load(cfg, normalization, task, preprocessing)
    if normalization is None and preprocessing is None:  # fitted here: a run's training data
        splits.lineage = data_lineage(cfg)
    return splits


def _load(cfg: DataConfig, normalization: Normalization | None, task: str | None,
          preprocessing: Preprocessing | None) -> DataSplits:
    if task is None and cfg.dataset in REGRESSION_DATASETS:
        task = "regression"
    if cfg.dataset in TABLE_DATASETS:
        return _load_table_file(cfg, task, preprocessing)
    if preprocessing is not None:
        normalization = preprocessing.normalization
    if cfg.dataset in TORCHVISION:
        # official train/test split; val is carved from the training pool
        x_pool, y_pool, x_test, y_test, target, source = load_torchvision(cfg)
        n_val = split_size(cfg.val_fraction, len(y_pool))
        train, val, _ = split_indices(_strata(y_pool, target), n_val, 0, cfg.split_seed,
                                       source, target.classes)
    else:
        x_pool, y_pool, target, source = load_arrays(cfg, task)
        n = len(y_pool)
        n_val, n_test = split_size(cfg.val_fraction, n), split_size(cfg.test_fraction, n)
        train, val, test = split_indices(_strata(y_pool, target), n_val, n_test,
                                          cfg.split_seed, source, target.classes)
        x_test, y_test = x_pool[test], y_pool[test]
    x_train, x_val = _to_float(x_pool[train]), _to_float(x_pool[val])  # (N_split, F)
    x_test = _to_float(x_test)
    if normalization is None:
        normalization = Normalization.fit(cfg.normalize, x_train)
    elif normalization.shift.numel() != x_train.shape[1]:
        raise DataError(f"{source}: has {x_train.shape[1]} features but the normalization "
                        f"expects {normalization.shift.numel()}")
    if target.task == "regression" and not target.mean:
        target.mean, target.std = _target_scaling(y_pool[train])
    names = _feature_names(cfg, x_train.shape[1])
    prep = Preprocessing([Column(n, "numeric") for n in names], normalization, target,
                         255.0 if x_pool.dtype == torch.uint8 else 1.0,
                         embedding=preprocessing.embedding if preprocessing else None)
    y_train = y_pool[train]
    if target.task == "classification" and cfg.label_noise:
        y_train = with_label_noise(y_train, len(target.classes), cfg.label_noise,
                                    cfg.split_seed)
    return DataSplits(  # the float copies are ours: normalize them in place
        _embedded(prep, normalization.apply_(x_train)), _targets(y_train, target),
        _embedded(prep, normalization.apply_(x_val)), _targets(y_pool[val], target),
        _embedded(prep, normalization.apply_(x_test)), _targets(y_test, target), prep)


def _load_table_file(cfg: DataConfig, task: str | None, prep: Preprocessing | None
                     ) -> DataSplits:
    """CSV/Parquet: columns by name, preprocessing fitted on the training rows."""
    if cfg.path == IN_MEMORY:
        raise DataError("the model was trained on a table in memory (fit from Python), which "
                        "cannot be read again: give a data file (eval --data FILE, predict "
                        "FILE)")
    source, lines = str(Path(cfg.path or "").expanduser()), cfg.dataset == "csv"
    table = [read_table(cfg.path or "", cfg.dataset,  # type: ignore[arg-type]
                        cfg.separator, decimal_comma=cfg.decimal_comma)]
    return _table_splits(table, cfg, task, prep, source, lines=lines)


def load_frame(frame: pl.DataFrame, cfg: DataConfig, *, task: str | None = None,
               preprocessing: Preprocessing | None = None, source: str = "data frame",
               lines: bool = False) -> DataSplits:
    """A table already in memory, split and preprocessed exactly as a CSV/Parquet file is.

    Args:
        frame: the feature and target columns, named as ``cfg`` names them (``data.path``
            and ``data.dataset`` are not read).
        cfg: the ``data`` section: target, features, drop, categorical, missing, splits.
        task: the experiment's ``task`` (None: classification, unless the target says no).
        preprocessing: used instead of fitting a new one (e.g. from a checkpoint).
        source: names the table in error messages.
        lines: a CSV file: messages give the line of a row as well.

    Raises:
        DataError: missing columns, bad cells, or too few rows to split.
    """
    return _table_splits([frame], cfg, task, preprocessing, source, lines=lines)


def _table_splits(table: list[pl.DataFrame], cfg: DataConfig, task: str | None,
                  prep: Preprocessing | None, source: str, *, lines: bool) -> DataSplits:
    """Split and preprocess `table[0]`; the list hands over the caller's reference, so a table
    read from a file is released before the tensors are built."""
    frame = table.pop()
    features, targets = (select_columns(frame, cfg, source) if prep is None
                         else ([], list(prep.target.columns)))
    rows = frame.height
    frame, notices = drop_missing_target(frame, targets, cfg.missing_target, source)
    with _rows_counted_after_drop(rows - frame.height):
        if prep is None:
            prep, y_pool, (train, val, test) = _fit_table(frame, cfg, task, features, targets,
                                                          source, notices, lines=lines)
        else:
            y_pool = encode_target(prep.target, frame, source, lines=lines, standardize=False)
            train, val, test = _table_split(y_pool, prep.target, cfg, source)
        # (N, F) float32, unnormalized; unseen val/test categories are a notice, never an error
        x_np, _ = encode_frame(prep, frame, source, 1, lines=lines, unknown="ignore")
    del frame
    target = prep.target
    notices += _unseen_notices(prep, x_np, train, source)
    x_pool = torch.from_numpy(x_np)
    x_train = x_pool[train]
    if prep.in_features != x_pool.shape[1]:  # a freshly fitted one: normalization still empty
        prep.normalization = Normalization.fit(cfg.normalize, x_train)
    norm = prep.normalization
    return DataSplits(
        _embedded(prep, norm.apply_(x_train)), _targets(y_pool[train], target),
        _embedded(prep, norm.apply_(x_pool[val])), _targets(y_pool[val], target),
        _embedded(prep, norm.apply_(x_pool[test])), _targets(y_pool[test], target), prep,
        notices)


def _embedded(prep: Preprocessing, x: torch.Tensor) -> torch.Tensor:
    """Normalized inputs through a stored numerical embedding (a checkpoint's; training fits
    its own after loading: `engine.data.embeddings.embed_splits`)."""
    return x if prep.embedding is None else prep.embedding.apply(x)


def _table_split(y_pool: np.ndarray, target: Target, cfg: DataConfig, source: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(y_pool)
    n_val, n_test = split_size(cfg.val_fraction, n), split_size(cfg.test_fraction, n)
    return split_indices(_strata(y_pool, target), n_val, n_test, cfg.split_seed, source,
                         target.classes)


def _fit_table(frame: pl.DataFrame, cfg: DataConfig, task: str | None, features: list[str],
               targets: list[str], source: str, notices: list[str], *, lines: bool
               ) -> tuple[Preprocessing, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Target, split and preprocessing (normalization still empty) fitted on the table;
    leak warnings are added to `notices`."""
    if not cfg.decimal_comma:  # numbers like 3,5 would become categories
        check_decimal_commas(frame, [f for f in features if f not in cfg.categorical], source)
    target, y_pool = fit_target(frame, targets, task, source, lines=lines)
    train, val, test = _table_split(y_pool, target, cfg, source)
    mask = np.zeros(len(y_pool), dtype=bool)
    mask[train] = True
    columns = fit_columns(frame, mask, features, cfg, source, lines=lines)
    if target.task == "regression":
        target.mean, target.std = _target_scaling(y_pool[train])
    empty = Normalization("none", torch.zeros(0), torch.ones(0))  # fitted by the caller
    notices += leak_notices(frame, mask, columns, target, y_pool, source)
    prep = Preprocessing(columns, empty, target, missing=cfg.missing,
                         unknown_categories=cfg.unknown_categories)
    return prep, y_pool, (train, val, test)


@contextmanager
def _rows_counted_after_drop(dropped: int) -> Iterator[None]:
    """Row numbers in errors count the rows left after data.missing_target: drop."""
    try:
        yield
    except DataError as e:
        if not dropped:
            raise
        raise DataError(f"{e} (rows counted without the {dropped} dropped for an empty "
                        f"target)") from None


def _unseen_notices(prep: Preprocessing, x: np.ndarray, train: np.ndarray, source: str
                    ) -> list[str]:
    """One notice counting validation/test cells whose category the training split lacked."""
    counts, j = {}, 0
    for col in prep.columns:
        width = len(col.input_names())
        if col.kind == "categorical":
            rest = np.ones(len(x), dtype=bool)
            rest[train] = False
            # unseen (or, without imputation, missing) cells encode as all zeros
            n = int((x[rest, j:j + len(col.categories)].sum(1) == 0).sum())
            if n:
                counts[col.name] = n
        j += width
    if not counts:
        return []
    parts = ", ".join(f"'{k}' {v}" for k, v in counts.items())
    return [f"{source}: {sum(counts.values())} validation/test cell(s) hold a category unseen "
            f"in training, encoded as all zeros ({parts})"]


def _target_scaling(y: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and population std per regression target on the training rows (std 0 -> 1)."""
    y64 = np.asarray(y, np.float64).reshape(len(y), -1)
    mean, std = y64.mean(0), y64.std(0)
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def _strata(y: np.ndarray, target: Target) -> np.ndarray:
    """Labels a split stratifies on: the classes, or one stratum for regression."""
    return y if target.task == "classification" else np.zeros(len(y), dtype=np.int64)


def _feature_names(cfg: DataConfig, n: int) -> list[str]:
    if cfg.dataset in SKLEARN:
        import sklearn.datasets

        names = getattr(sklearn.datasets, SKLEARN[cfg.dataset].loader)().feature_names
        return [str(v) for v in names]
    prefix = "pixel" if cfg.dataset in TORCHVISION else "x"
    return [f"{prefix}_{i}" for i in range(n)]


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """Images stay uint8 until split (4x less copying); they become float32 in [0, 1]."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _targets(y: np.ndarray, target: Target) -> torch.Tensor:
    """Class indices (N,) int64, or standardized regression targets (N, T) float32."""
    if target.task == "classification":
        return torch.as_tensor(y, dtype=torch.int64)
    # (N, T): the width comes from the target, since an empty split (test_fraction 0) has none
    y64 = np.asarray(y, np.float64).reshape(len(y), len(target.mean))
    return torch.as_tensor((y64 - np.asarray(target.mean)) / np.asarray(target.std),
                           dtype=torch.float32)


# ----------------------------------------------------------------------------- loaders

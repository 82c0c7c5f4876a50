"""Which rows of a data set went to train, validation and test: the split `load_data` makes,
as row indices, without encoding any feature (so a user can reproduce it elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnet_cli.config import (
    REGRESSION_DATASETS,
    SPLITS,
    SYNTHETIC_DATASETS,
    TABLE_DATASETS,
    DataConfig,
)
from fcnet_cli.engine.data.arrays import load_arrays
from fcnet_cli.engine.data.catalog import SKLEARN
from fcnet_cli.engine.data.columns import encode_target, fit_target, select_columns
from fcnet_cli.engine.data.load import _strata
from fcnet_cli.engine.data.splits import split_indices, split_size
from fcnet_cli.engine.data.tables import Target, read_table
from fcnet_cli.errors import DataError

__all__ = ["split_rows"]


def split_rows(cfg: DataConfig, task: str | None = None, target: Target | None = None
               ) -> dict[str, np.ndarray]:
    """The 0-based row indices (sorted, int64) of each split, keyed train/val/test.

    The same seeded, stratified split `load_data` makes from the same ``cfg``: split
    ``name`` of `load_data(cfg)` holds exactly the rows ``split_rows(cfg)[name]``, in that
    order. Rows count from the first data row of a table (the header is not a row).

    Args:
        cfg: the ``data`` section (absolute paths, as a checkpoint stores it).
        task: the experiment's ``task``.
        target: the fitted target of a checkpoint (its classes); None fits it from the data.

    Raises:
        DataError: unreadable data, or a torchvision set (its test split is a separate file).
    """
    if task is None and cfg.dataset in REGRESSION_DATASETS:
        task = "regression"
    if cfg.dataset in TABLE_DATASETS:
        frame = read_table(cfg.path or "", cfg.dataset)  # type: ignore[arg-type]
        source, lines = str(Path(cfg.path or "").expanduser()), cfg.dataset == "csv"
        if target is None:
            _, targets = select_columns(frame, cfg, source)
            target, y = fit_target(frame, targets, task, source, lines=lines)
        else:
            y = encode_target(target, frame, source, lines=lines, standardize=False)
    elif cfg.dataset == "npz" or cfg.dataset in SKLEARN or cfg.dataset in SYNTHETIC_DATASETS:
        _, y, target, source = load_arrays(cfg, task)
    else:
        raise DataError(f"{cfg.dataset}: uses its official test files, so its rows are not "
                        f"numbered by fcnet's split (train and val come from the training "
                        f"file)")
    n = len(y)
    n_val, n_test = split_size(cfg.val_fraction, n), split_size(cfg.test_fraction, n)
    parts = split_indices(_strata(y, target), n_val, n_test, cfg.split_seed, source,
                          target.classes)
    return {name: np.asarray(rows, np.int64) for name, rows in zip(SPLITS, parts, strict=True)}


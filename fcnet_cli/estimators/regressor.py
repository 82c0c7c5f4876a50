"""`FCNetRegressor`: fcnet's regression run as a scikit-learn estimator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_array

from fcnet_cli.estimators.base import FCNetEstimator, free_name
from fcnet_cli.estimators.inputs import series
from fcnet_cli.estimators.params import REGRESSOR

__all__ = ["FCNetRegressor"]


class FCNetRegressor(RegressorMixin, FCNetEstimator):
    """A fully connected network regressor trained by fcnet's engine; y (N,) or (N, T) is
    standardized on the training split and predictions come back in y's units.

    The parameters are `FCNetClassifier`'s, with `loss` (loss.name: mse, huber or l1)
    instead of label_smoothing and class_weights. Every parameter left at None takes the
    value a minimal experiment YAML gets.

    Attributes:
        n_features_in_, feature_names_in_: the columns of X (names only for data frames).
        model_: the serving model (`fcnet_cli.serve.model.Model`) of the best checkpoint.
        result_: the run's `RunResult` (history, best epoch, test metrics).
        run_dir_: the run directory under output_dir, or None.
    """

    _task = "regression"
    _fields = REGRESSOR

    def __init__(self, *, hidden: Sequence[int] | None = None, activation: str | None = None,
                 dropout: float | None = None, batch_norm: bool | None = None,
                 num_embeddings: str | None = None,
                 optimizer: str | None = None, lr: float | None = None,
                 momentum: float | None = None, nesterov: bool | None = None,
                 weight_decay: float | None = None, l1: float | None = None,
                 l2: float | None = None, scheduler: str | None = None,
                 epochs: int | None = None, batch_size: int | None = None,
                 early_stopping: int | None = None, seed: int | None = None,
                 normalize: str | None = None, missing: str | None = None,
                 missing_indicator: bool | None = None,
                 categorical: Sequence[str] | None = None, max_categories: int | None = None,
                 val_fraction: float | None = None, test_fraction: float | None = None,
                 split_seed: int | None = None, loss: str | None = None,
                 device: str | None = None, threads: int | None = None,
                 config: str | Path | dict[str, Any] | None = None,
                 output_dir: str | Path | None = None, verbose: int = 0) -> None:
        self.hidden, self.activation, self.dropout = hidden, activation, dropout
        self.batch_norm, self.optimizer, self.lr = batch_norm, optimizer, lr
        self.num_embeddings = num_embeddings
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.l1, self.l2, self.scheduler = l1, l2, scheduler
        self.epochs, self.batch_size, self.early_stopping = epochs, batch_size, early_stopping
        self.seed, self.normalize, self.missing = seed, normalize, missing
        self.missing_indicator, self.categorical = missing_indicator, categorical
        self.max_categories, self.val_fraction = max_categories, val_fraction
        self.test_fraction, self.split_seed = test_fraction, split_seed
        self.loss = loss
        self.device, self.threads = device, threads
        self.config, self.output_dir, self.verbose = config, output_dir, verbose

    def _targets(self, y: Any, names: list[str]) -> tuple[pl.DataFrame, int]:
        given = [str(c) for c in y.columns] if hasattr(y, "columns") else \
            [str(getattr(y, "name", None) or "target")]
        values = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if values.ndim == 1:
            return pl.DataFrame([series(free_name(given[0], names), values)]), 1
        if len(given) != values.shape[1]:
            given = [f"target_{j}" for j in range(values.shape[1])]
        cols, taken = [], list(names)
        for j, name in enumerate(given):
            taken.append(free_name(name, taken))
            cols.append(series(taken[-1], values[:, j]))
        return pl.DataFrame(cols), 2

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in y's units: (N,) for a 1-D y, (N, T) for a 2-D one; float64."""
        x = self._features(X)  # first: an unfitted estimator raises NotFittedError
        y = self.model_.values_of(x).astype(np.float64)
        return y[:, 0] if self._y_info == 1 else y

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

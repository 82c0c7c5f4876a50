"""`FCNetClassifier`: fcnet's classification run as a scikit-learn estimator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from fcnet_cli.engine.data.columns import encode_target
from fcnet_cli.estimators.base import FCNetEstimator, free_name
from fcnet_cli.estimators.inputs import InputError, series
from fcnet_cli.estimators.params import CLASSIFIER

__all__ = ["FCNetClassifier"]


class FCNetClassifier(ClassifierMixin, FCNetEstimator):
    """A fully connected network classifier trained by fcnet's engine.

    Every parameter left at None takes the value a minimal experiment YAML gets; each sets
    one experiment field (`fcnet schema` lists them all):

    hidden (model.hidden), activation (model.activation), dropout (model.dropout),
    batch_norm (model.batch_norm), num_embeddings (model.num_embeddings: none,
    piecewise_linear or periodic; their knobs through config), optimizer (optimizer.name),
    lr (optimizer.lr), momentum (optimizer.momentum), nesterov (optimizer.nesterov),
    weight_decay (optimizer.weight_decay), scheduler (scheduler.name), epochs
    (training.epochs), batch_size (training.batch_size), early_stopping (patience in epochs,
    training.early_stopping.patience), seed (training.seed), device (training.device),
    threads (training.threads), normalize (data.normalize), missing (data.missing),
    missing_indicator (data.missing_indicator), categorical (data.categorical),
    max_categories (data.max_categories), val_fraction (data.val_fraction), test_fraction
    (data.test_fraction), split_seed (data.split_seed), label_smoothing
    (loss.label_smoothing), class_weights (loss.class_weights).

    l1, l2: the penalty l1·Σ|w| + l2·Σw² on the weight matrices, added to each batch's loss
    (regularization.type, strength and l1_ratio: l1, l2 or elastic_net).
    config: an experiment YAML file or a mapping of sections, read first; the parameters
    set above override it. output_dir: keep a run directory there (default: none is kept).
    verbose: 1 shows the epoch table while training.

    Attributes:
        classes_: the labels of y, sorted; predict returns them and predict_proba's
            columns follow them.
        n_features_in_, feature_names_in_: the columns of X (names only for data frames).
        model_: the serving model (`fcnet_cli.serve.model.Model`) of the best checkpoint.
        result_: the run's `RunResult` (history, best epoch, test metrics).
        run_dir_: the run directory under output_dir, or None.
    """

    _task = "classification"
    _fields = CLASSIFIER

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
                 split_seed: int | None = None, label_smoothing: float | None = None,
                 class_weights: str | Sequence[float] | None = None,
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
        self.label_smoothing, self.class_weights = label_smoothing, class_weights
        self.device, self.threads = device, threads
        self.config, self.output_dir, self.verbose = config, output_dir, verbose

    def _targets(self, y: Any, names: list[str]) -> tuple[pl.DataFrame, np.ndarray]:
        given = getattr(y, "name", None)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        name = free_name(given if isinstance(given, str) and given else "target", names)
        return pl.DataFrame([series(name, y)]), np.unique(y)

    def _fitted(self) -> None:
        self.classes_ = self._y_info
        # the model's output j is class target.classes[j]: find each of classes_ there
        target = self.model_.target
        probe = pl.DataFrame([series(target.columns[0], self.classes_)])
        order = encode_target(target, probe, "y")
        if sorted(order.tolist()) != list(range(len(target.classes))):
            raise InputError(f"y: labels {self.classes_.tolist()} do not map one to one onto "
                             f"the model's classes {target.classes}")
        self._order = order

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, C) float64; column j is `classes_[j]`."""
        x = self._features(X)
        p = self.model_.proba_of(x)
        return p[:, self._order].astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each row (N,), of y's dtype."""
        x = self._features(X)
        logits = self.model_.logits(x)
        return self.classes_[logits[:, self._order].argmax(1)]

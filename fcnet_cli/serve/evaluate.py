"""`fcnet eval CHECKPOINT --data FILE`: the evaluation report on a new labelled file.

Labels are matched to the model's classes by name (NPZ: ``y`` holds class indices); a
regression model's target column(s) are matched by name (NPZ: ``y`` (N,) or (N, T) in the
target's units) and standardized with the training split's mean/std, so the report is the
one `eval --split` prints. The features go through the same seam as `predict`. The file's
features are held in memory as float32 (N, F) for the report, read in chunks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from fcnet_cli.engine.data.labels import encode_labels
from fcnet_cli.engine.data.reader import Table, open_table
from fcnet_cli.engine.data.tables import UnseenCategories
from fcnet_cli.engine.evaluate import evaluate, evaluate_regression, member_spread
from fcnet_cli.engine.train.losses import MemberLoss
from fcnet_cli.errors import DataError, UsageError
from fcnet_cli.events import EvalResult
from fcnet_cli.serve.model import Model

__all__ = ["evaluate_file"]


def _read_npz(model: Model, table: Table) -> tuple[np.ndarray, np.ndarray]:
    if "y" not in table.columns:
        raise DataError(f"{table.source}: no array y of labels to evaluate against")
    x = model.spec.encode_array(table.npz_array("x"), table.source)
    y = table.npz_array("y")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{table.source}: y must have shape ({len(x)},) (got {y.shape})")
    c = len(model.classes_)
    ok = y.dtype.kind in "iu" and bool(((y >= 0) & (y < c)).all())
    if not ok:
        bad = next(i for i, v in enumerate(y) if not (float(v).is_integer() and 0 <= v < c))
        raise DataError(f"{table.source}: row {bad + 1}: label {y[bad]!r} is not a class "
                        f"index of the model (0..{c - 1})")
    return x, y.astype(np.int64)


def _read_table(model: Model, table: Table, target: str, batch_rows: int,
                unseen: UnseenCategories) -> tuple[np.ndarray, np.ndarray]:
    if target not in table.columns:
        raise DataError(f"{table.source}: no label column '{target}' (columns: "
                        f"{', '.join(table.columns)}); name it with --target")
    model.spec.match(table.columns, table.source)
    names = model.spec.names  # the raw columns; encoding happens in spec.encode
    dtypes = {target: pl.String, **model.spec.read_dtypes()}
    xs, ys = [], []
    for start, frame in table.frames(list(dict.fromkeys(names + [target])), dtypes,
                                     batch_rows):
        ys.append(encode_labels(frame.get_column(target), model.classes_.tolist(),
                                table.source, start + 1))
        x, new = model.spec.encode_counted(frame, table.source, start)
        xs.append(x)
        unseen.add(new)
    if not xs:
        return np.zeros((0, model.n_inputs), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def _targets(model: Model, target: str | None) -> list[str]:
    """The regression target column(s) to read: the model's, or ``--target`` for one."""
    names = list(model.target.names)
    if target is None:
        return names
    if len(names) != 1:
        raise UsageError(f"--target: the model predicts {len(names)} targets "
                         f"({', '.join(names)}); name the columns as the model does")
    return [target]


def _standardized(model: Model, y: np.ndarray) -> np.ndarray:
    """Target values (N, T) in their own units → the standard units the model outputs."""
    t = model.target
    return ((y - np.asarray(t.mean, np.float64)) / np.asarray(t.std, np.float64)
            ).astype(np.float32)


def _read_regression_npz(model: Model, table: Table) -> tuple[np.ndarray, np.ndarray]:
    if "y" not in table.columns:
        raise DataError(f"{table.source}: no array y of target values to evaluate against")
    x = model.spec.encode_array(table.npz_array("x"), table.source)
    y = np.asarray(table.npz_array("y"), np.float64)
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    if y.shape != (len(x), model.n_outputs):
        raise DataError(f"{table.source}: y must have shape ({len(x)}, {model.n_outputs}) "
                        f"(got {y.shape})")
    return x, _standardized(model, y)


def _regression_values(frame: pl.DataFrame, names: list[str], source: str, first_row: int
                       ) -> np.ndarray:
    """Target values (B, T) float64 of one chunk; missing or non-finite cells raise."""
    y = frame.select(names).to_numpy().astype(np.float64)
    bad = ~np.isfinite(y)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(f"{source}: row {first_row + row + 1}, column '{names[col]}': "
                        f"missing or non-finite target value")
    return y


def _read_regression_table(model: Model, table: Table, names: list[str], batch_rows: int,
                           unseen: UnseenCategories) -> tuple[np.ndarray, np.ndarray]:
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise DataError(f"{table.source}: no target column '{missing[0]}' (columns: "
                        f"{', '.join(table.columns)}); name it with --target")
    model.spec.match(table.columns, table.source)
    dtypes = {**model.spec.read_dtypes(), **{n: pl.Float64 for n in names}}
    xs, ys = [], []
    for start, frame in table.frames(list(dict.fromkeys(model.spec.names + names)),
                                     dtypes, batch_rows):
        ys.append(_regression_values(frame, names, table.source, start))
        x, new = model.spec.encode_counted(frame, table.source, start)
        xs.append(x)
        unseen.add(new)
    if not xs:
        return np.zeros((0, model.n_inputs), np.float32), np.zeros((0, len(names)), np.float32)
    return np.concatenate(xs), _standardized(model, np.concatenate(ys))


def _evaluate_regression_file(model: Model, data: Path, target: str | None,
                              batch_size: int) -> EvalResult:
    names = _targets(model, target)
    table = open_table(Path(data), model.experiment.data)
    unseen = UnseenCategories()
    if table.kind == "npz":
        x, y = _read_regression_npz(model, table)
    else:
        x, y = _read_regression_table(model, table, names, batch_size, unseen)
    exp = model.experiment
    loss = MemberLoss(exp.loss_name, delta=torch.tensor([exp.loss.huber_delta]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    result = evaluate_regression(model.module, xt, yt, model.target, table.source, loss,
                                 batch_size=batch_size)
    if model.member_modules:
        result.members = member_spread([
            evaluate_regression(m, xt, yt, model.target, table.source, loss,
                                batch_size=batch_size) for m in model.member_modules])
    return _noted(result, unseen, table.source)


def _noted(result: EvalResult, unseen: UnseenCategories, source: str) -> EvalResult:
    """The report, with one notice line for categories training never saw."""
    if unseen:
        result.notices.insert(0, unseen.message(source))
    return result


def evaluate_file(model: Model, data: Path, target: str | None = None,
                  batch_size: int = 65536) -> EvalResult:
    """Loss, accuracy, per-class P/R/F1 and confusion matrix of ``model`` on a labelled file;
    for a regression model, loss, RMSE, MAE, R² and residual quantiles in the target's units.

    Args:
        model: from `load_model`.
        data: CSV/Parquet with the feature columns and a label column, or NPZ ``x``, ``y``.
        target: the label column; default: the one the model was trained with (regression:
            the model's target column(s), by name).
        batch_size: rows per chunk read and per forward pass.

    Raises:
        DataError: missing columns, bad cells, unknown or missing labels (naming them).
    """
    if model.task == "regression":
        return _evaluate_regression_file(model, data, target, batch_size)
    table = open_table(Path(data), model.experiment.data)
    unseen = UnseenCategories()
    if table.kind == "npz":
        x, y = _read_npz(model, table)
    else:
        x, y = _read_table(model, table, target or model.spec.target, batch_size, unseen)
    result = _evaluate(model, model.module, x, y, table.source, batch_size)
    if model.member_modules:
        result.members = member_spread([_evaluate(model, m, x, y, table.source, batch_size)
                                        for m in model.member_modules])
    return _noted(result, unseen, table.source)


def _evaluate(model: Model, module: torch.nn.Module, x: np.ndarray, y: np.ndarray,
              source: str, batch_size: int) -> EvalResult:
    return evaluate(module, torch.from_numpy(x), torch.from_numpy(y), model.classes_.tolist(),
                    split=source, label_smoothing=model.label_smoothing, batch_size=batch_size,
                    threshold=model.threshold)

"""Metrics of a model on one split: loss, accuracy, per-class precision/recall/F1, confusion.

Which way each metric is better, its bounds and its display name are the metric registry's
(`fcnet_cli.metrics`, re-exported here): a leaf module, so that reports read it without torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import SPLITS, Experiment
from fcnet_cli.engine.data.lineage import check_lineage
from fcnet_cli.engine.data.load import DataSplits, Normalization, Preprocessing, load_data
from fcnet_cli.engine.data.tables import Target
from fcnet_cli.engine.model import build_model, member_configs, member_modules
from fcnet_cli.engine.ranking import (
    average_precision,
    best_threshold,
    check_threshold,
    margin_threshold,
    roc_auc,
)
from fcnet_cli.engine.store.checkpoint import load_checkpoint
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.train.kernels import precision_recall_f1
from fcnet_cli.engine.train.losses import (
    EVAL_ROWS,
    MemberLoss,
    class_weight_table,
    classification_metrics,
)
from fcnet_cli.errors import CheckpointError, DataError, UsageError
from fcnet_cli.events import EvalResult
from fcnet_cli.metrics import REGISTRY, MetricInfo, metric_info, metric_mode

__all__ = ["EVAL_ROWS", "MEMBER_METRICS", "REGISTRY", "MetricInfo", "evaluate",
           "evaluate_checkpoint", "evaluate_regression", "evaluate_split", "majority_notice",
           "member_spread", "metric_info", "metric_mode", "require_rows", "validation_threshold"]


def _model_device(model: nn.Module) -> torch.device | None:
    param = next(model.parameters(), None)
    return None if param is None else param.device


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Model outputs (N, C|T) in eval mode, batch by batch on the model's device."""
    device = _model_device(model) or x.device
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[s:s + batch_size].to(device)) for s in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0, 0, device=device)


def majority_notice(accuracy: float, y: torch.Tensor, classes: list[str], split: str
                    ) -> tuple[float, list[str]]:
    """The majority-class rate of `y`, and a warning when `accuracy` is within 0.01 of it."""
    if not len(y):
        return math.nan, []
    counts = torch.bincount(y.cpu(), minlength=len(classes))
    top = int(counts.argmax())
    rate = float(counts[top]) / len(y)
    if len(classes) < 2 or abs(accuracy - rate) > 0.01:
        return rate, []
    return rate, [f"warning: {split} accuracy {accuracy:.4f} is within 0.01 of the majority-"
                  f"class rate {rate:.4f} (class '{classes[top]}'): the model may just predict "
                  f"the majority class; look at balanced accuracy and macro F1, or set "
                  f"loss.class_weights: balanced"]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: list[str],
             split: str, label_smoothing: float = 0.0, batch_size: int = EVAL_ROWS,
             class_weights: torch.Tensor | None = None,
             threshold: float | None = None) -> EvalResult:
    """Evaluate a classifier on one split, in eval mode and without gradients.

    Args:
        model: maps (N, in_features) to logits (N, C).
        x: features (N, in_features); y: class indices (N,) in 0..C-1.
        classes: the C class names, index = label.
        split: the split's name, recorded in the result.
        label_smoothing, class_weights: as in `nn.CrossEntropyLoss`; the loss is its mean.
        batch_size: rows per forward pass.
        threshold: binary only: predict the positive class (``classes[1]``) when its
            probability is at least this (default: the more probable class).

    Returns:
        EvalResult; precision/recall/F1 are 0 where undefined (no predictions / no examples),
        and an empty split gives NaN loss and accuracy with zero counts.
    """
    n, c = len(y), len(classes)
    if n and (int(y.min()) < 0 or int(y.max()) >= c):
        raise DataError(f"{split} split has labels outside 0..{c - 1}")
    logits = _outputs(model, x, batch_size)
    if n and logits.shape[-1] != c:
        raise ValueError(f"model has {logits.shape[-1]} outputs for {c} classes")
    truth = y.to(logits.device).long()
    w = None if class_weights is None else class_weights.to(logits.device)
    loss_sum = F.cross_entropy(logits.float(), truth, weight=w, reduction="sum",
                               label_smoothing=label_smoothing).double() if n else 0.0
    denom = float(w[truth].sum()) if w is not None and n else n
    pred = _decide(logits, threshold) if n else truth
    # confusion[i, j] = #examples of true class i predicted as j: one bincount over i·C + j
    confusion = torch.bincount(truth * c + pred, minlength=c * c).reshape(c, c).cpu()
    tp, support = confusion.diag().double(), confusion.sum(1)  # (C,), (C,)
    precision, recall, f1 = (t[0] for t in precision_recall_f1(confusion.unsqueeze(0)))
    accuracy = float(tp.sum()) / n if n else math.nan
    summary = classification_metrics(confusion.unsqueeze(0))
    rate, notices = majority_notice(accuracy, y, list(classes), split)
    return EvalResult(
        split=split, loss=float(loss_sum) / denom if n else math.nan, accuracy=accuracy,
        n=n, classes=list(classes),
        precision=precision.tolist(), recall=recall.tolist(), f1=f1.tolist(),
        support=support.tolist(), confusion=confusion.tolist(),
        metrics={"balanced_accuracy": float(summary["val_balanced_accuracy"][0]),
                 "macro_f1": float(summary["val_macro_f1"][0]), "majority_rate": rate,
                 **_binary_metrics(logits, truth, c, threshold)},
        notices=notices)


def _decide(logits: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Predicted class per row (N,): the most probable one, or with a binary `threshold`
    the positive class when its probability is at least `threshold`."""
    if threshold is None:
        return logits.argmax(-1)
    check_threshold(threshold, [str(i) for i in range(logits.shape[-1])])
    return (logits[:, 1] - logits[:, 0] >= margin_threshold(threshold)).long()


def _binary_metrics(logits: torch.Tensor, truth: torch.Tensor, c: int,
                    threshold: float | None) -> dict[str, float]:
    """Two classes: ROC-AUC and PR-AUC of the positive class (and the threshold used)."""
    if c != 2 or not len(truth):
        return {}
    margin, positive = (logits[:, 1] - logits[:, 0]).float(), truth == 1
    out = {"roc_auc": float(roc_auc(margin, positive)),
           "pr_auc": float(average_precision(margin, positive))}
    return out if threshold is None else {**out, "threshold": threshold}


def validation_threshold(model: nn.Module, data: DataSplits) -> dict[str, float]:
    """Binary: the probability threshold that maximizes balanced accuracy on the validation
    split (``best_threshold``) and that balanced accuracy; empty otherwise."""
    if data.task != "classification" or data.n_classes != 2 or not len(data.y_val):
        return {}
    logits = _outputs(model, data.x_val, EVAL_ROWS).float()
    t, balanced = best_threshold(logits[:, 1] - logits[:, 0], data.y_val.to(logits.device) == 1)
    return {"best_threshold": t, "best_threshold_balanced_accuracy": balanced}


def evaluate_regression(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: Target,
                        split: str, loss: MemberLoss, batch_size: int = EVAL_ROWS) -> EvalResult:
    """Evaluate a regression model on one split: the training loss (standardized units),
    RMSE, MAE and R² per target and averaged, in the target's own units, and the residual
    (truth − prediction) quantiles."""
    out = _outputs(model, x, batch_size).float()  # (N, T) standardized
    n = len(y)
    yk = y.to(out.device).float()
    value = float(loss(out.unsqueeze(0), yk.unsqueeze(0))[0]) if n else math.nan
    std = torch.tensor(target.std, dtype=torch.float64, device=out.device)
    mean = torch.tensor(target.mean, dtype=torch.float64, device=out.device)
    truth, pred = yk.double() * std + mean, out.double() * std + mean  # target units
    resid = truth - pred  # (N, T)
    metrics: dict[str, float] = {}
    if n:
        sst = ((truth - truth.mean(0)) ** 2).sum(0).clamp(min=1e-300)
        per = {"rmse": (resid ** 2).mean(0).sqrt(), "mae": resid.abs().mean(0),
               "r2": 1 - (resid ** 2).sum(0) / sst}
        for key, v in per.items():
            metrics[key] = float(v.mean())
            if len(target.columns) > 1:
                metrics.update({f"{key}_{t}": float(v[i]) for i, t in enumerate(target.columns)})
        qs = torch.quantile(resid.flatten(), torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95],
                                                          dtype=torch.float64, device=out.device))
        metrics.update({f"residual_q{int(q * 100):02d}": float(v)
                        for q, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), qs, strict=True)})
        metrics["residual_mean"] = float(resid.mean())
    return EvalResult(split=split, loss=value, accuracy=math.nan, n=n, classes=[],
                      precision=[], recall=[], f1=[], support=[], confusion=[],
                      task="regression", metrics=metrics, targets=list(target.columns))


def _load_splits(exp: Experiment, meta: dict, in_features: int, where: Path) -> DataSplits:
    """The checkpoint's data, preprocessed with its stored preprocessing (or normalization)."""
    source = exp.data.path or exp.data.dataset
    try:
        prep = Preprocessing.from_meta(meta) if "preprocessing" in meta else None
        norm = Normalization.from_json(meta["normalization"])
    except DataError as e:
        raise CheckpointError(f"{where}: {e}") from None
    if prep is not None:
        return load_data(exp.data, task=exp.task, preprocessing=prep)
    if norm.shift.numel() != in_features:
        raise CheckpointError(f"{where}: normalization has {norm.shift.numel()} features, "
                              f"in_features is {in_features}")
    try:
        return load_data(exp.data, normalization=norm, task=exp.task)
    except DataError:
        # the usual cause is a changed data file: name the feature counts if they differ
        try:
            n_features = load_data(exp.data, task=exp.task).n_features
        except DataError:
            n_features = in_features
        if n_features != in_features:
            raise DataError(f"{source}: data set has {n_features} features, checkpoint "
                            f"expects {in_features}") from None
        raise


def evaluate_split(model: nn.Module, exp: Experiment, data: DataSplits, split: str,
                   threshold: float | None = None) -> EvalResult:
    """Evaluate `model` (trained by `exp`) on one split of `data`, with the run's loss;
    `threshold` as in `evaluate`."""
    x, y = data.split(split)
    if data.task == "regression":
        delta = torch.tensor([exp.loss.huber_delta])
        return evaluate_regression(model, x, y, data.preprocessing.target, split,
                                   MemberLoss(exp.loss_name, delta=delta))
    weights = class_weight_table([exp], data.y_train, data.n_classes, torch.device("cpu"))
    return evaluate(model, x, y, data.classes, split, label_smoothing=exp.loss.label_smoothing,
                    class_weights=None if weights is None else weights[0], threshold=threshold)


def require_rows(data: DataSplits, split: str) -> None:
    """Refuse to score or predict a split with no rows (a run trained with test_fraction 0)."""
    if len(data.split(split)[1]):
        return
    if split == "test":
        raise UsageError("no test split (the run used data.test_fraction: 0); use --split val "
                         "or --data FILE")
    raise UsageError(f"the {split} split has no rows; use another split or --data FILE")


def evaluate_checkpoint(path: Path, split: str = "test", threshold: float | None = None, *,
                        allow_changed_data: bool = False) -> EvalResult:
    """Load a checkpoint, rebuild its data with the stored preprocessing, evaluate one split.

    A binary classifier's result also holds the threshold that maximizes balanced accuracy
    on the validation split (`validation_threshold`); `threshold` as in `evaluate`.

    Works from any working directory: the stored config holds absolute data paths. The data
    file must still hold the bytes the run trained on (`engine.lineage`); with
    `allow_changed_data` a changed file gives a warning notice instead of an error.
    Raises CheckpointError (unusable checkpoint), DataError (data that does not fit it,
    a changed or missing data file) or UsageError (a split with no rows).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
    ckpt = load_checkpoint(Path(path))
    meta = ckpt.meta
    exp = ckpt.experiment()
    lineage_notices = check_lineage(meta, allow_changed=allow_changed_data)
    in_features, n_outputs = meta["in_features"], meta["n_classes"]
    splits = _load_splits(exp, meta, in_features, ckpt.dir / RunDir.META)
    source = exp.data.path or exp.data.dataset
    if splits.n_features != in_features:
        raise DataError(f"{source}: data set has {splits.n_features} features, checkpoint "
                        f"expects {in_features}")
    if splits.n_outputs != n_outputs:
        what = "targets" if splits.task == "regression" else "classes"
        raise DataError(f"{source}: data set has {splits.n_outputs} {what}, "
                        f"checkpoint has {n_outputs}")
    if list(splits.classes) != list(meta["classes"]):
        raise DataError(f"{source}: data set classes {splits.classes} differ from the "
                        f"checkpoint's {meta['classes']}")
    with torch.device("meta"):  # no init work: every tensor is replaced by the checkpoint's
        model = build_model(exp.model, in_features, n_outputs, splits.task,
                            **member_configs(meta))
    require_rows(splits, split)
    model.load_state_dict(ckpt.state_dict, assign=True)
    if threshold is not None:
        check_threshold(threshold, splits.classes)
    result = evaluate_split(model, exp, splits, split, threshold)
    result.metrics.update(validation_threshold(model, splits))
    result.notices = lineage_notices + list(splits.notices) + result.notices
    members = member_modules(model)  # an ensemble's members, either kind
    if members:
        result.members = member_spread([evaluate_split(m, exp, splits, split, threshold)
                                        for m in members])
    return result


MEMBER_METRICS = {"classification": ("loss", "accuracy", "balanced_accuracy", "macro_f1",
                                     "roc_auc"),
                  "regression": ("loss", "rmse", "mae", "r2")}


def member_spread(results: list[EvalResult]) -> dict[str, dict[str, Any]]:
    """The members' main metrics: {name: {"mean", "std" (sample, n − 1), "values"}}."""
    out: dict[str, dict[str, Any]] = {}
    for name in MEMBER_METRICS[results[0].task]:
        values = [float(getattr(r, name)) if name in ("loss", "accuracy") else
                  r.metrics.get(name, math.nan) for r in results]
        if all(math.isnan(v) for v in values):
            continue
        t = torch.tensor(values, dtype=torch.float64)
        std = float(t.std()) if len(values) > 1 else 0.0
        out[name] = {"mean": float(t.mean()), "std": std, "values": values}
    return out

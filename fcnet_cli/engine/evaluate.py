"""Metrics of a model on one split: loss, accuracy, per-class precision/recall/F1, confusion."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn
from torch.nn import functional as F

from fcnet_cli.config import SPLITS, Experiment
from fcnet_cli.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from fcnet_cli.engine.data import DataSplits, Normalization, load_data
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.errors import CheckpointError, DataError
from fcnet_cli.events import EvalResult

__all__ = ["evaluate", "evaluate_checkpoint"]


def _model_device(model: nn.Module) -> torch.device | None:
    param = next(model.parameters(), None)
    return None if param is None else param.device


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int,
             label_smoothing: float, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (a 0-d float64 tensor) and the predicted classes (N,)."""
    device = _model_device(model) or x.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    preds = []
    for start in range(0, len(y), batch_size):
        xb = x[start:start + batch_size].to(device)  # (B, in_features)
        yb = y[start:start + batch_size].to(device)  # (B,)
        logits = model(xb)  # (B, C)
        if logits.shape[-1] != n_classes:
            raise ValueError(f"model has {logits.shape[-1]} outputs for {n_classes} classes")
        # sum, not mean: the last batch may be smaller; divided by N once at the end
        loss_sum += F.cross_entropy(logits, yb, reduction="sum",
                                    label_smoothing=label_smoothing).double()
        preds.append(logits.argmax(-1))
    pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=device)
    return loss_sum, pred


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: list[str],
             split: str, label_smoothing: float = 0.0, batch_size: int = 8192) -> EvalResult:
    """Evaluate `model` on one split, in eval mode and without gradients.

    Args:
        model: maps (N, in_features) to logits (N, C).
        x: features (N, in_features); y: class indices (N,) in 0..C-1.
        classes: the C class names, index = label.
        split: the split's name, recorded in the result.
        label_smoothing: as in `nn.CrossEntropyLoss`; the loss is the mean over the split.
        batch_size: rows per forward pass.

    Returns:
        EvalResult; precision/recall/F1 are 0 where undefined (no predictions / no examples),
        and an empty split gives NaN loss and accuracy with zero counts.
    """
    n, c = len(y), len(classes)
    if n and (int(y.min()) < 0 or int(y.max()) >= c):
        raise DataError(f"{split} split has labels outside 0..{c - 1}")
    was_training = model.training
    model.eval()
    try:
        loss_sum, pred = _predict(model, x, y, c, label_smoothing, batch_size)
    finally:
        model.train(was_training)
    truth = y.to(pred.device).long()
    # confusion[i, j] = #examples of true class i predicted as j: one bincount over i·C + j
    confusion = torch.bincount(truth * c + pred, minlength=c * c).reshape(c, c).cpu()
    tp = confusion.diag().double()  # (C,)
    predicted, support = confusion.sum(0).double(), confusion.sum(1)  # (C,), (C,)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1).double(), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), 0.0)
    return EvalResult(
        split=split,
        loss=float(loss_sum) / n if n else math.nan,
        accuracy=float(tp.sum()) / n if n else math.nan,
        n=n, classes=list(classes),
        precision=precision.tolist(), recall=recall.tolist(), f1=f1.tolist(),
        support=support.tolist(), confusion=confusion.tolist())


def _experiment(ckpt: LoadedCheckpoint) -> Experiment:
    try:
        return Experiment.model_validate(ckpt.meta["config"])
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{ckpt.dir / 'meta.json'}: config.{loc}: {first['msg']}") from None


def _load_splits(exp: Experiment, norm: Normalization, in_features: int) -> DataSplits:
    """The checkpoint's data, normalized with its stored statistics."""
    source = exp.data.path or exp.data.dataset
    try:
        return load_data(exp.data, normalization=norm)
    except DataError:
        # the usual cause is a changed data file: name the feature counts if they differ
        try:
            n_features = load_data(exp.data).n_features
        except DataError:
            n_features = in_features
        if n_features != in_features:
            raise DataError(f"{source}: data set has {n_features} features, checkpoint "
                            f"expects {in_features}") from None
        raise


def evaluate_checkpoint(path: Path, split: str = "test") -> EvalResult:
    """Load a checkpoint, rebuild its data with the stored normalization, evaluate one split.

    Works from any working directory: the stored config holds absolute data paths.
    Raises CheckpointError (unusable checkpoint) or DataError (data that does not fit it).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
    ckpt = load_checkpoint(Path(path))
    meta = ckpt.meta
    exp = _experiment(ckpt)
    in_features, n_classes = meta["in_features"], meta["n_classes"]
    try:
        norm = Normalization.from_json(meta["normalization"])
    except DataError as e:
        raise CheckpointError(f"{ckpt.dir / 'meta.json'}: {e}") from None
    if norm.shift.numel() != in_features:
        raise CheckpointError(f"{ckpt.dir / 'meta.json'}: normalization has "
                              f"{norm.shift.numel()} features, in_features is {in_features}")
    splits = _load_splits(exp, norm, in_features)
    source = exp.data.path or exp.data.dataset
    if splits.n_features != in_features:
        raise DataError(f"{source}: data set has {splits.n_features} features, checkpoint "
                        f"expects {in_features}")
    if splits.n_classes > n_classes:
        raise DataError(f"{source}: data set has {splits.n_classes} classes, checkpoint "
                        f"has {n_classes}")
    if list(splits.classes) != list(meta["classes"]):
        raise DataError(f"{source}: data set classes {splits.classes} differ from the "
                        f"checkpoint's {meta['classes']}")
    x, y = splits.split(split)
    with torch.device("meta"):  # no init work: every tensor is replaced by the checkpoint's
        model = build_mlp(exp.model, in_features, n_classes)
    model.load_state_dict(ckpt.state_dict, assign=True)
    return evaluate(model, x, y, list(meta["classes"]), split,
                    label_smoothing=exp.loss.label_smoothing)

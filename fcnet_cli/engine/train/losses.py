"""Per-member losses (cross-entropy with class weights, MSE, Huber, L1) and epoch metrics.

Every hyperparameter of a loss is a per-member tensor: label smoothing and the Huber delta
are (K,), class weights (K, C). K = 1 calls the torch functional itself; K > 1 writes the
same formulas batched over members. Plain PyTorch (`nn.CrossEntropyLoss(weight=…)`,
`nn.MSELoss`, `nn.HuberLoss`, `nn.L1Loss`) is the oracle (tests/test_losses.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from fcnet_cli.config import Experiment
from fcnet_cli.engine.data.load import DataSplits
from fcnet_cli.engine.ranking import average_precision, roc_auc
from fcnet_cli.engine.train.kernels import precision_recall_f1, smoothed_nll
from fcnet_cli.errors import ConfigError

__all__ = ["EVAL_ROWS", "MemberLoss", "Outputs", "class_weight_table", "classification_metrics",
           "member_loss", "regression_metrics", "validate"]

EVAL_ROWS = 8192  # rows per evaluation forward: bounds the activations' memory


def class_weight_table(exps: Sequence[Experiment], y_train: torch.Tensor, n_classes: int,
                       device: torch.device) -> torch.Tensor | None:
    """(K, C) class weights, or None when no member weights its classes.

    ``balanced`` is scikit-learn's ``n_samples / (n_classes · count_c)`` on the training split.
    """
    if all(e.loss.class_weights == "none" for e in exps):
        return None
    counts = torch.bincount(y_train.cpu(), minlength=n_classes).double()  # (C,)
    rows = []
    for e in exps:
        w = e.loss.class_weights
        if w == "none":
            rows.append(torch.ones(n_classes, dtype=torch.float64))
        elif w == "balanced":
            rows.append(counts.sum() / (n_classes * counts.clamp(min=1)))
        else:
            if len(w) != n_classes:
                raise ConfigError([f"loss.class_weights: {len(w)} weights for {n_classes} "
                                   f"classes; give one weight per class"])
            rows.append(torch.tensor(w, dtype=torch.float64))
    return torch.stack(rows).float().to(device)


@dataclass
class MemberLoss:
    """The loss of K members: ``loss(out (K, B, C|T), y (K, B) | (K, B, T)) -> (K,)``."""

    kind: str  # cross_entropy | mse | huber | l1
    smoothing: torch.Tensor | None = None  # (K,) label smoothing, None when all are 0
    weights: torch.Tensor | None = None  # (K, C) class weights
    delta: torch.Tensor | None = None  # (K,) Huber delta
    # one member's settings as Python floats for the torch functionals, read once here and not
    # once per step (each read of a tensor element is a host synchronization on a GPU)
    first_smoothing: float = field(init=False, default=0.0)
    first_delta: float = field(init=False, default=1.0)

    def __post_init__(self) -> None:
        if self.smoothing is not None and len(self.smoothing) == 1:
            self.first_smoothing = float(self.smoothing[0])
        if self.delta is not None and len(self.delta) == 1:
            self.first_delta = float(self.delta[0])

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return member_loss(self, out, y)


def member_loss(spec: MemberLoss, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss per member (K,), torch semantics for each kind."""
    if spec.kind == "cross_entropy":
        return _cross_entropy(out, y, spec)
    if out.shape[0] == 1:  # one member: the torch functionals themselves
        o, t = out[0], y[0]
        if spec.kind == "mse":
            return F.mse_loss(o, t).unsqueeze(0)
        if spec.kind == "l1":
            return F.l1_loss(o, t).unsqueeze(0)
        return F.huber_loss(o, t, delta=spec.first_delta).unsqueeze(0)
    diff = out - y  # (K, B, T)
    if spec.kind == "mse":
        return (diff * diff).mean((1, 2))
    if spec.kind == "l1":
        return diff.abs().mean((1, 2))
    a = diff.abs()
    delta = (torch.ones(out.shape[0], device=out.device) if spec.delta is None
             else spec.delta).view(-1, 1, 1)
    return torch.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta)).mean((1, 2))


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor, spec: MemberLoss) -> torch.Tensor:
    """nn.CrossEntropyLoss(weight, label_smoothing) per member; logits (K, B, C), y (K, B)."""
    smoothing, weights = spec.smoothing, spec.weights
    if logits.shape[0] == 1:  # one member: the fused kernel itself
        w = None if weights is None else weights[0]
        return F.cross_entropy(logits[0], y[0], weight=w,
                               label_smoothing=spec.first_smoothing).unsqueeze(0)
    logp = torch.log_softmax(logits, dim=-1)  # (K, B, C)
    if weights is None:  # the training step's definition (engine/train/kernels.py)
        return smoothed_nll(logp, y, smoothing)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (K, B)
    wy = weights.gather(1, y)  # (K, B): each example's class weight
    denom = wy.sum(1)  # (K,) torch's weighted mean divides by Σ w[y]
    loss = (wy * nll).sum(1) / denom
    if smoothing is None:
        return loss
    # torch: smooth = -Σ_c w_c·logp_c per example, summed, / Σ w[y], scaled by ε / C
    smooth = -(logp * weights.unsqueeze(1)).sum((1, 2)) / denom
    return (1 - smoothing) * loss + smoothing / logits.shape[-1] * smooth


# ----------------------------------------------------------------------------- metrics


class Outputs(Protocol):
    """What `validate` reads: K members' outputs (K, B, C) of inputs (K, B, F) (a
    `Population`, or a shared ensemble's mean prediction as one member)."""

    K: int
    n_classes: int
    device: torch.device

    def forward(self, x: torch.Tensor, *, train: bool) -> torch.Tensor: ...


@torch.no_grad()
def validate(pop: Outputs, loss: MemberLoss, data: DataSplits
             ) -> tuple[list[float], dict[str, list[float]]]:
    """Validation loss per member (`loss`, the training loss's definition) and the metrics
    (`config.Monitor`) per member."""
    x, y, device = data.x_val, data.y_val, pop.device
    K, C = pop.K, pop.n_classes
    regression = data.task == "regression"
    loss_sum = torch.zeros(K, device=device)
    # classification: confusion (K, C, C); regression: Σ squared / absolute errors (K, T)
    conf = torch.zeros(K * C * C, dtype=torch.long, device=device)
    sse = torch.zeros(K, C, dtype=torch.float64, device=device)
    sae = torch.zeros_like(sse)
    member = torch.arange(K, device=device).unsqueeze(1)  # (K, 1)
    margins = []  # binary: logit[1] − logit[0] per batch, (K, B) each, for the AUCs
    binary = not regression and C == 2
    for s in range(0, len(y), EVAL_ROWS):
        xb, yb = x[s:s + EVAL_ROWS], y[s:s + EVAL_ROWS]
        out = pop.forward(xb.expand(K, -1, -1), train=False)
        yk = yb.expand(K, *yb.shape)
        loss_sum += loss(out, yk) * len(yb)
        if regression:
            diff = (out - yk).double()
            sse += (diff * diff).sum(1)
            sae += diff.abs().sum(1)
        else:
            conf += torch.bincount(((member * C + yk) * C + out.argmax(-1)).flatten(),
                                   minlength=K * C * C)
            if binary:
                margins.append((out[..., 1] - out[..., 0]).float())
    n = max(len(y), 1)
    if regression:
        yd = y.double()
        sst = ((yd - yd.mean(0)) ** 2).sum(0)  # (T,)
        metrics = regression_metrics(sse, sae, sst, len(y), data.preprocessing.target.std)
    else:
        metrics = classification_metrics(conf.view(K, C, C))
        if binary and margins:
            scores, positive = torch.cat(margins, 1), y == 1  # (K, N), (N,)
            metrics["val_roc_auc"] = roc_auc(scores, positive)
            metrics["val_pr_auc"] = average_precision(scores, positive)
    return (loss_sum / n).tolist(), {k: v.tolist() for k, v in metrics.items()}



def classification_metrics(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy, balanced accuracy and macro F1 per member from confusion (K, C, C)
    (rows = true class), following scikit-learn: balanced accuracy averages recall over the
    classes present; macro F1 averages F1 over the classes present or predicted."""
    conf = confusion.double()
    tp = conf.diagonal(dim1=1, dim2=2)  # (K, C)
    support, predicted = conf.sum(2), conf.sum(1)  # (K, C) true / predicted counts
    n = support.sum(1).clamp(min=1)
    present = support > 0
    _, recall, f1 = precision_recall_f1(confusion)
    used = present | (predicted > 0)
    # accuracy in float32, like a float32 count of correct predictions divided by N
    return {"val_accuracy": tp.sum(1).float() / n.float(),
            "val_balanced_accuracy": (recall * present).sum(1) / present.sum(1).clamp(min=1),
            "val_macro_f1": (f1 * used).sum(1) / used.sum(1).clamp(min=1)}


def regression_metrics(sse: torch.Tensor, sae: torch.Tensor, sst: torch.Tensor, n: int,
                       std: Sequence[float]) -> dict[str, torch.Tensor]:
    """RMSE, MAE (target units) and R² per member, each the plain mean over targets
    (scikit-learn's ``uniform_average``).

    Args:
        sse, sae: (K, T) summed squared / absolute errors in standardized units.
        sst: (T,) summed squared deviation of the truth from its mean, standardized units.
        n: rows; std: (T,) the target's standard deviation (un-standardizes the errors).
    """
    s = torch.as_tensor(np.asarray(std), dtype=torch.float64, device=sse.device)  # (T,)
    sse, sae = sse.double(), sae.double()
    rmse = (sse / max(n, 1)).sqrt() * s
    mae = sae / max(n, 1) * s
    r2 = 1 - sse / sst.double().clamp(min=1e-300)
    return {"val_rmse": rmse.mean(1), "val_mae": mae.mean(1), "val_r2": r2.mean(1)}

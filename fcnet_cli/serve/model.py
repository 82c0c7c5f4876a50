"""`load_model`: a trained checkpoint as a scikit-learn-style classifier.

    from fcnet_cli import load_model
    m = load_model("runs/iris/<run-id>")          # a run directory (→ its best checkpoint)
    m.predict(frame)                              # class names, rows matched by column name
    m.predict_proba(x)                            # (N, C) float32; numpy: the raw columns in order

`predict`, `eval --data` and `export` are thin layers over `Model`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from fcnet_cli.engine.data.normalization import smooth_clip
from fcnet_cli.engine.model import build_model, member_configs, member_modules
from fcnet_cli.engine.ranking import check_threshold, margin_threshold
from fcnet_cli.engine.store.checkpoint import LoadedCheckpoint, load_checkpoint
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.locate import locate_checkpoint
from fcnet_cli.errors import DataError, UsageError
from fcnet_cli.serve.features import FeatureSpec

__all__ = ["Model", "Standardize", "load_model"]


class Standardize(nn.Module):
    """The fitted normalization as the graph's first step: ``(x - shift) / scale``, then
    ``robust``'s smooth clip when `clip` (elementwise ops: the exported graph has them too)."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor, *, clip: bool = False):
        super().__init__()
        self.clip = clip
        self.register_buffer("shift", shift.reshape(1, -1).clone())  # (1, F)
        self.register_buffer("scale", scale.reshape(1, -1).clone())  # (1, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same float32 ops as training's in-place normalization: bit-identical inputs
        # (no class-level annotations for the buffers: TorchScript cannot resolve them)
        z = (x - self.shift) / self.scale  # type: ignore[operator]
        return smooth_clip(z) if self.clip else z


class Model:
    """A checkpoint ready to predict: raw features in, class names or probabilities out.

    Attributes:
        classes_: class names, index = model output (numpy array of str).
        feature_names_in_: the input columns in model order (numpy array of str).
        n_features_in_: number of input columns.
        n_inputs: number of model inputs after encoding (categories one-hot).
        module: ``nn.Sequential(Standardize, MLP)`` in eval mode (with the numerical
            embedding between them when the model has one, `model.num_embeddings`); maps raw
            (N, F) float32 features to logits (N, C). What export traces. An ensemble's MLP is an
            `engine.model.Ensemble`: its logits are the log of the members' mean probability
            (regression: the members' mean prediction).
        ensemble: the number of members (1: a single model, an ensemble of one).
        member_weights: a selected ensemble's member weights (sum 1); [] for equal weights.
        checkpoint: the verified checkpoint (directory, weights, meta.json).
        threshold: binary classifiers: predict the positive class ``classes_[1]`` when its
            probability is at least this; None (default): the more probable class. Set it
            with `set_threshold`.
    """

    def __init__(self, ckpt: LoadedCheckpoint):
        meta = ckpt.meta
        exp = ckpt.experiment()
        self.checkpoint = ckpt
        self.experiment = exp  # the training config (loss, data) as stored in meta.json
        self.spec = FeatureSpec.from_meta(meta, str(ckpt.dir / RunDir.META))
        self.label_smoothing = exp.loss.label_smoothing
        self.target = self.spec.prep.target
        self.task = self.target.task  # classification, or regression (outputs = target names)
        self.classes_ = np.array([str(c) for c in meta["classes"]])
        self.feature_names_in_ = np.array(self.spec.names)
        self.n_features_in_ = self.spec.n_features
        self.n_inputs = self.spec.prep.in_features  # model inputs (categories one-hot)
        self.n_outputs = int(meta["n_classes"])  # classes, or regression targets
        with torch.device("meta"):  # no init work: every tensor comes from the checkpoint
            mlp = build_model(exp.model, meta["in_features"], meta["n_classes"], self.task,
                              **member_configs(meta))
        mlp.load_state_dict(ckpt.state_dict, assign=True)
        norm = self.spec.normalization
        front: list[nn.Module] = [Standardize(norm.shift, norm.scale, clip=norm.clip)]
        if self.spec.prep.embedding is not None:
            front.append(self.spec.prep.embedding.module())
        self.module = nn.Sequential(*front, mlp).eval()
        # members whose (weighted) mean `module` predicts (1: one MLP)
        self.ensemble = len(member_modules(mlp)) or 1
        # a selected ensemble's weights (greedy selection; meta.json), [] for equal weights
        self.member_weights: list[float] = list(meta.get("member_weights") or [])
        self.threshold: float | None = None

    @property
    def member_modules(self) -> list[nn.Module]:
        """An ensemble's members, each as `module` with that member's MLP; [] for one MLP."""
        return [nn.Sequential(*self.module[:-1], m).eval()
                for m in member_modules(self.module[-1])]

    def set_threshold(self, threshold: float | None) -> None:
        """Decide binary predictions at this positive-class probability (None: argmax).

        Raises:
            UsageError: not a binary classifier, or a threshold outside (0, 1).
        """
        if threshold is not None:
            check_threshold(threshold, [] if self.task == "regression" else
                            self.classes_.tolist())
        self.threshold = threshold

    def decide(self, logits: np.ndarray) -> np.ndarray:
        """Class indices (N,) from logits (N, C): argmax, or the binary threshold rule."""
        if self.threshold is None:
            return logits.argmax(-1)
        margin = logits[:, 1].astype(np.float64) - logits[:, 0]
        return (margin >= margin_threshold(self.threshold)).astype(np.int64)

    @property
    def sha256(self) -> str:
        """sha256 of the checkpoint's weights file (as recorded and verified at load)."""
        return str(self.checkpoint.meta["sha256"][RunDir.WEIGHTS])

    def features(self, x: Any, source: str = "input") -> np.ndarray:
        """Model input (N, F) float32 from a polars/pandas frame (by column name; extra columns
        ignored) or a numpy array (its columns the raw columns in `feature_names_in_` order, or
        the model's encoded inputs). Categories training never saw encode as all
        zeros with a `UserWarning` naming them."""
        if hasattr(x, "columns") and hasattr(x, "to_numpy") and not isinstance(x, pl.DataFrame):
            x = _from_pandas(x, source)  # pandas, without needing pyarrow
        if isinstance(x, pl.DataFrame):
            out, unseen = self.spec.encode_counted(x, source)
        else:
            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().numpy()
            out, unseen = self.spec.encode_array_counted(np.asarray(x), source)
        if unseen:
            warnings.warn(unseen.message(source), UserWarning, stacklevel=3)
        return out

    @torch.no_grad()
    def logits(self, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Logits (N, C) float32 of encoded features ``x`` (N, n_inputs), in row batches."""
        out = [self.module(torch.from_numpy(x[i:i + batch_size])).numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs), np.float32)

    def proba_of(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) float32 of encoded features ``x`` (N, F) float32."""
        return torch.softmax(torch.from_numpy(self.logits(x)), dim=-1).numpy()

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (N, C) float32; column j is ``classes_[j]``."""
        if self.task == "regression":
            raise UsageError(f"{self.checkpoint.dir}: a regression model has no class "
                             f"probabilities; use predict")
        return self.proba_of(self.features(x))

    def values_of(self, x: np.ndarray) -> np.ndarray:
        """Regression: predictions (N, T) in the target's own units (not standardized)."""
        return self.target.unstandardize(self.logits(x)).astype(np.float32)

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class names (N,), or for regression the target value(s) (N,) / (N, T)."""
        if self.task == "regression":
            y = self.values_of(self.features(x))
            return y[:, 0] if y.shape[1] == 1 else y
        return self.classes_[self.decide(self.logits(self.features(x)))]

    def __repr__(self) -> str:
        members = f", ensemble of {self.ensemble}" if self.ensemble > 1 else ""
        return (f"Model({str(self.checkpoint.dir)!r}, {self.n_features_in_} features, "
                f"{len(self.classes_)} classes{members})")


def _from_pandas(frame: Any, source: str) -> pl.DataFrame:
    """A pandas frame as polars, column by column (string columns need no pyarrow this way).
    None, np.nan, pd.NA and NaT are all missing cells (polars nulls)."""
    try:
        return pl.DataFrame([_pandas_column(str(c), frame[c]) for c in frame.columns])
    except (TypeError, ValueError, pl.exceptions.PolarsError) as e:
        raise DataError(f"{source}: cannot read the data frame ({e})") from None


def _pandas_column(name: str, s: Any) -> pl.Series:
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufmM":  # plain numpy: NaN/NaT kept
        return pl.Series(name, s.to_numpy())
    if getattr(dtype, "kind", "?") in ("i", "u", "f"):  # nullable Int64, Float64: NA -> NaN
        return pl.Series(name, s.to_numpy(dtype="float64", na_value=np.nan))
    # text, object, category, nullable boolean: Python values, every kind of NA as None
    values = s.astype(object).where(s.notna(), None).tolist()
    try:
        return pl.Series(name, values)
    except (TypeError, ValueError, pl.exceptions.PolarsError):  # mixed types: read as text
        return pl.Series(name, [None if v is None else str(v) for v in values], pl.String)


def load_model(path: str | Path) -> Model:
    """Load a checkpoint directory, a run directory (→ its best checkpoint) or a seed group
    (→ its best seed's, by the monitored validation metric) for prediction; `runs/NAME/latest`
    stands for the newest run or group of NAME, also inside a path (`latest/seed-2`).
    An ensemble's run directory (`model.ensemble: N`) loads as one model predicting the mean
    of its members' probabilities (`Model.ensemble`, `Model.member_modules`).

    Raises:
        CheckpointError: missing, empty, corrupt or mismatched checkpoint (exit 2 in the CLI).
        UsageError: a group none of whose seeds has a checkpoint yet.
    """
    return Model(load_checkpoint(locate_checkpoint(path).dir))

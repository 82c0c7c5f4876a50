"""`load_model`: a trained checkpoint as a scikit-learn-style classifier.

    from fcnet_cli import load_model
    m = load_model("runs/iris/<run-id>")          # a run directory (→ its best checkpoint)
    m.predict(frame)                              # class names, rows matched by column name
    m.predict_proba(x)                            # (N, C) float32, numpy input matched by width

`predict`, `eval --data` and `export` are thin layers over `Model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from fcnet_cli.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from fcnet_cli.engine.evaluate import _experiment
from fcnet_cli.engine.files import resolve_latest
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.seedpick import best_seed, is_group_dir
from fcnet_cli.errors import DataError, UsageError
from fcnet_cli.serve.features import FeatureSpec

__all__ = ["Model", "Standardize", "load_model"]


class Standardize(nn.Module):
    """The fitted normalization as the graph's first step: ``(x - shift) / scale``."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.reshape(1, -1).clone())  # (1, F)
        self.register_buffer("scale", scale.reshape(1, -1).clone())  # (1, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same float32 ops as training's in-place normalization: bit-identical inputs
        # (no class-level annotations for the buffers: TorchScript cannot resolve them)
        return (x - self.shift) / self.scale  # type: ignore[operator]


class Model:
    """A checkpoint ready to predict: raw features in, class names or probabilities out.

    Attributes:
        classes_: class names, index = model output (numpy array of str).
        feature_names_in_: the input columns in model order (numpy array of str).
        n_features_in_: number of input columns.
        n_inputs: number of model inputs after encoding (categories one-hot).
        module: ``nn.Sequential(Standardize, MLP)`` in eval mode; maps raw (N, F) float32
            features to logits (N, C). What export traces.
        checkpoint: the verified checkpoint (directory, weights, meta.json).
    """

    def __init__(self, ckpt: LoadedCheckpoint):
        meta = ckpt.meta
        exp = _experiment(ckpt)
        self.checkpoint = ckpt
        self.experiment = exp  # the training config (loss, data) as stored in meta.json
        self.spec = FeatureSpec.from_meta(meta, str(ckpt.dir / "meta.json"))
        self.label_smoothing = exp.loss.label_smoothing
        self.target = self.spec.prep.target
        self.task = self.target.task  # classification, or regression (outputs = target names)
        self.classes_ = np.array([str(c) for c in meta["classes"]])
        self.feature_names_in_ = np.array(self.spec.names)
        self.n_features_in_ = self.spec.n_features
        self.n_inputs = self.spec.prep.in_features  # model inputs (categories one-hot)
        self.n_outputs = int(meta["n_classes"])  # classes, or regression targets
        with torch.device("meta"):  # no init work: every tensor comes from the checkpoint
            mlp = build_mlp(exp.model, meta["in_features"], meta["n_classes"])
        mlp.load_state_dict(ckpt.state_dict, assign=True)
        norm = self.spec.normalization
        self.module = nn.Sequential(Standardize(norm.shift, norm.scale), mlp).eval()

    @property
    def sha256(self) -> str:
        """sha256 of the checkpoint's weights file (as recorded and verified at load)."""
        return str(self.checkpoint.meta["sha256"]["model.safetensors"])

    def features(self, x: Any, source: str = "input") -> np.ndarray:
        """Model input (N, F) float32 from a numpy array (by width) or a polars/pandas frame
        (by column name; extra columns ignored)."""
        if isinstance(x, pl.DataFrame):
            return self.spec.encode(x, source)
        if hasattr(x, "columns") and hasattr(x, "to_numpy"):  # pandas, without needing pyarrow
            return self.spec.encode(_from_pandas(x, source), source)
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return self.spec.encode_array(np.asarray(x), source)

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
        return self.classes_[self.logits(self.features(x)).argmax(-1)]

    def __repr__(self) -> str:
        return (f"Model({str(self.checkpoint.dir)!r}, {self.n_features_in_} features, "
                f"{len(self.classes_)} classes)")


def _from_pandas(frame: Any, source: str) -> pl.DataFrame:
    """A pandas frame as polars, column by column (string columns need no pyarrow this way)."""
    try:
        return pl.DataFrame({str(c): frame[c].to_numpy() for c in frame.columns})
    except (TypeError, ValueError, pl.exceptions.PolarsError) as e:
        raise DataError(f"{source}: cannot read the data frame ({e})") from None


def load_model(path: str | Path) -> Model:
    """Load a checkpoint directory, a run directory (→ its best checkpoint) or a seed group
    (→ its best seed's, by the monitored validation metric) for prediction; `runs/NAME/latest`
    stands for the newest run or group of NAME, also inside a path (`latest/seed-2`).

    Raises:
        CheckpointError: missing, empty, corrupt or mismatched checkpoint (exit 2 in the CLI).
        UsageError: a group none of whose seeds has a checkpoint yet.
    """
    where = resolve_latest(path)
    if is_group_dir(where):
        where = best_seed(where).run_dir
    return Model(load_checkpoint(where))

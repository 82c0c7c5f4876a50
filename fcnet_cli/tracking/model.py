"""The best checkpoint as an MLflow `pyfunc` model that wraps `load_model`.

Raw columns in (a pandas frame, columns by name, empty cells allowed), and out what
`fcnet predict --proba` writes: a `prediction` column (class names) and one `proba_<class>`
column per class; a regression model gives one column per target, in the target's units.
The checkpoint travels as the model's artifact; loading the model needs fcnet installed.

    model = mlflow.pyfunc.load_model("runs:/<run id>/model")
    model.predict(frame)
    mlflow models serve -m runs:/<run id>/model --env-manager local
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
import torch
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from fcnet_cli.engine.rundir import versions
from fcnet_cli.serve.model import Model, load_model
from fcnet_cli.serve.predict import output_columns
from fcnet_cli.serve.splits import split_kept

__all__ = ["EXAMPLE_ROWS", "FcnetPyfunc", "log_model", "prediction_frame", "save_model"]

EXAMPLE_ROWS = 5
CHECKPOINT = "checkpoint"  # the artifact key of the checkpoint directory


def prediction_frame(model: Model, frame: Any) -> pd.DataFrame:
    """What `fcnet predict --proba` writes for these rows, as a pandas frame."""
    x = model.features(frame, "model input")  # (N, F) float32
    columns = output_columns(model, proba=True)
    if model.task == "regression":
        y = model.values_of(x)  # (N, T)
        return pd.DataFrame({name: y[:, j] for j, name in enumerate(columns)})
    logits = model.logits(x)  # (N, C)
    p = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    out = {columns[0]: model.classes_[model.decide(logits)].astype(object)}
    out.update({name: p[:, j] for j, name in enumerate(columns[1:])})
    return pd.DataFrame(out)


class FcnetPyfunc(PythonModel):  # type: ignore[misc]
    """`load_model` of the logged checkpoint; `predict` = `fcnet predict --proba`."""

    def load_context(self, context: Any) -> None:
        self.model = load_model(context.artifacts[CHECKPOINT])

    def predict(self, context: Any, model_input: Any, params: Any = None) -> pd.DataFrame:
        return prediction_frame(self.model, model_input)


def _example(model: Model) -> pd.DataFrame | None:
    """A few validation rows as the user would pass them (raw columns, empty cells kept)."""
    names = model.feature_names_in_.tolist()
    try:
        rows = split_kept(model, "val", names).head(EXAMPLE_ROWS)
    except Exception:  # a bundled data set: no source file; numeric columns only
        rows = None
    if rows is None:
        if model.n_inputs != model.n_features_in_:
            return None
        from fcnet_cli.serve.predict import raw_split

        x = raw_split(model, "val", allow_changed_data=True)[:EXAMPLE_ROWS]
        rows = pl.DataFrame({n: x[:, j].astype(np.float64) for j, n in enumerate(names)})
    return pd.DataFrame({c: rows[c].to_list() for c in rows.columns})


def _col_type(dtype: Any) -> str:
    if dtype.kind in "iu":
        return "long"
    if dtype.kind == "f":
        return "double"
    return "boolean" if dtype.kind == "b" else "string"


def _signature(model: Model, example: pd.DataFrame | None, output: pd.DataFrame | None
               ) -> ModelSignature:
    names = model.feature_names_in_.tolist()
    kinds = {c: _col_type(example[c].dtype) for c in names} if example is not None else {}
    inputs = Schema([ColSpec(kinds.get(c, "string"), c, required=False) for c in names])
    out_names = output_columns(model, proba=True)
    out_types = ["double"] * len(out_names)
    if model.task == "classification":
        out_types[0] = "string"
    outputs = Schema([ColSpec(t, n) for t, n in zip(out_types, out_names, strict=True)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def save_model(checkpoint: Path, path: Path) -> Path:
    """Write the pyfunc model of `checkpoint` (a `checkpoints/best` directory) to `path`."""
    model = load_model(checkpoint)
    example = _example(model)
    output = None if example is None else prediction_frame(model, example)
    mlflow.pyfunc.save_model(
        path=str(path), python_model=FcnetPyfunc(), artifacts={CHECKPOINT: str(checkpoint)},
        signature=_signature(model, example, output), input_example=example,
        pip_requirements=[f"fcnet=={versions()['fcnet']}", f"torch=={torch.__version__}",
                          f"mlflow=={mlflow.__version__}"])
    return path


def log_model(client: Any, run_id: str, checkpoint: Path, artifact_path: str = "model") -> None:
    """Save the pyfunc model of `checkpoint` and log it as the run's `artifact_path`."""
    with tempfile.TemporaryDirectory(prefix="fcnet-mlflow-") as tmp:
        client.log_artifacts(run_id, str(save_model(checkpoint, Path(tmp) / "model")),
                             artifact_path)

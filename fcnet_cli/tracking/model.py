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
import warnings
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
from mlflow.types.schema import AnyType

from fcnet_cli.engine.store.records import versions
from fcnet_cli.serve.model import Model, load_model
from fcnet_cli.serve.predict import output_columns
from fcnet_cli.serve.splits import split_kept

__all__ = ["EXAMPLE_ROWS", "FcnetPyfunc", "log_model", "prediction_frame", "save_model"]

EXAMPLE_ROWS = 5
CHECKPOINT = "checkpoint"  # the artifact key of the checkpoint directory
_MODEL_CODE = """from mlflow.models import set_model

from fcnet_cli.tracking.model import FcnetPyfunc

set_model(FcnetPyfunc())
"""


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

    # the signature describes the input: no type hints on `predict`, whose validation and
    # signature inference MLflow would try (and warn about)
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        self.model = load_model(context.artifacts[CHECKPOINT])

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return prediction_frame(self.model, model_input)


def _col_type(column: Any) -> str:
    """The MLflow type of one raw input column (`engine.cells.Column`), as pandas reads it."""
    if column.kind == "numeric":
        return "double"
    if column.kind == "categorical" and column.form in ("int", "bool"):
        return "long" if column.form == "int" else "boolean"
    return "string"  # text categories, dates (ISO text)


def _typed(values: list[Any], kind: str) -> pd.Series:
    series = pd.Series(values, dtype=object)
    if kind == "string":
        return series.where(series.notna(), None)
    numbers = pd.to_numeric(series, errors="coerce")
    if kind == "double":
        return numbers.astype("float64")
    if numbers.isna().any():
        return series
    return numbers.astype("int64") if kind == "long" else \
        series.astype(str).str.lower().isin(("true", "1"))


def _example(model: Model) -> pd.DataFrame | None:
    """A few validation rows as a user passes them (raw columns, empty cells kept)."""
    columns = model.spec.prep.columns
    names = [c.name for c in columns]
    try:  # a table: its source file's cells (as text)
        rows = split_kept(model, "val", names).head(EXAMPLE_ROWS)
    except Exception:  # a bundled data set: no source file; numeric columns only
        if model.n_inputs != model.n_features_in_:
            return None
        from fcnet_cli.serve.predict import raw_split

        x = raw_split(model, "val", allow_changed_data=True)[:EXAMPLE_ROWS]
        rows = pl.DataFrame({n: x[:, j].astype(np.float64) for j, n in enumerate(names)})
    return pd.DataFrame({c.name: _typed(rows[c.name].to_list(), _col_type(c))
                         for c in columns})


def _signature(model: Model) -> ModelSignature:
    """Inputs by name, each optional; text columns `string`, the others `Any`: MLflow would
    refuse int64 cells for a `double` column (and NaN for a `long` one), which fcnet takes."""
    inputs = Schema([ColSpec("string" if _col_type(c) == "string" else AnyType(), c.name,
                             required=False) for c in model.spec.prep.columns])
    out_names = output_columns(model, proba=True)
    out_types = ["double"] * len(out_names)
    if model.task == "classification":
        out_types[0] = "string"
    outputs = Schema([ColSpec(t, n) for t, n in zip(out_types, out_names, strict=True)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def save_model(checkpoint: Path, path: Path) -> Path:
    """Write the pyfunc model of `checkpoint` (a `checkpoints/best` directory) to `path`."""
    model = load_model(checkpoint)
    with tempfile.TemporaryDirectory(prefix="fcnet-pyfunc-") as tmp:
        code = Path(tmp) / "fcnet_model.py"  # a model from code: nothing pickled
        code.write_text(_MODEL_CODE, encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's hints about type hints and pickles
            mlflow.pyfunc.save_model(
                path=str(path), python_model=str(code),
                artifacts={CHECKPOINT: str(checkpoint)}, signature=_signature(model),
                input_example=_example(model),
                pip_requirements=[f"fcnet=={versions()['fcnet']}",
                                  f"torch=={torch.__version__.split('+')[0]}",
                                  f"mlflow=={mlflow.__version__}"])
    return path


def log_model(client: Any, run_id: str, checkpoint: Path, artifact_path: str = "model") -> None:
    """Save the pyfunc model of `checkpoint` and log it as the run's `artifact_path`."""
    with tempfile.TemporaryDirectory(prefix="fcnet-mlflow-") as tmp:
        client.log_artifacts(run_id, str(save_model(checkpoint, Path(tmp) / "model")),
                             artifact_path)

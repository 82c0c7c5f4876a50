"""Export a checkpoint to ONNX or TorchScript, with a JSON sidecar describing its input/output.

The graph is `Model.module` (normalization baked in as its first step) followed by a softmax
(classification) or the target's un-standardization (regression):

- input ``features``: raw feature values (batch, F) float32, columns in the sidecar's
  ``feature_names`` order; the batch axis is dynamic;
- classification: ONNX outputs ``probabilities`` (batch, C) and ``logits`` (batch, C);
  TorchScript's ``forward`` returns the probabilities;
- regression: both output ``predictions`` (batch, T) in the target's own units, column t
  being the sidecar's ``targets[t]``.

Fitted categorical encodings (when the data pipeline has them) stay outside the float graph:
it takes the encoded columns, and the sidecar lists them as ``feature_names``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import get_args

import torch
from torch import nn

from fcnet_cli.config import ExportFormat
from fcnet_cli.errors import UsageError
from fcnet_cli.serve.model import Model
from fcnet_cli.serve.writer import check_output, staged_output

__all__ = ["EXPORT_FORMATS", "ExportFormat", "ExportReport", "export_model", "sidecar_path"]

EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
# what torch's ONNX exporter (dynamo=True) imports; onnxruntime only runs the result
ONNX_PACKAGES = ("onnx", "onnxscript")


class Probabilities(nn.Module):
    """``module`` then a softmax: raw features (batch, F) → probabilities (batch, C)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.module(x), dim=-1)


class ProbabilitiesAndLogits(nn.Module):
    """``module`` then a softmax, returning (probabilities, logits), each (batch, C)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.module(x)
        return torch.softmax(z, dim=-1), z


class Predictions(nn.Module):
    """``module`` then ``y * std + mean``: raw features (batch, F) → target values (batch, T)."""

    def __init__(self, module: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.module = module
        self.register_buffer("mean", mean.reshape(1, -1).clone())  # (1, T)
        self.register_buffer("std", std.reshape(1, -1).clone())  # (1, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the float32 ops of `Target.unstandardize`, so the graph agrees with `predict`
        return self.module(x) * self.std + self.mean  # type: ignore[operator]


@dataclass
class ExportReport:
    path: Path
    sidecar: Path
    format: ExportFormat


def sidecar_path(out: Path) -> Path:
    """The sidecar beside ``out``: ``model.onnx`` → ``model.onnx.json``."""
    return out.with_name(out.name + ".json")


def require_onnx() -> None:
    """Raise a usage error naming the first missing package the ONNX exporter needs."""
    for name in ONNX_PACKAGES:
        try:
            import_module(name)
        except ImportError:
            raise UsageError(f"ONNX export needs the package '{name}', which is not installed: "
                             f"pip install 'fcnet[export]'") from None


def _outputs(model: Model, fmt: ExportFormat) -> list[str]:
    if model.task == "regression":
        return ["predictions"]
    return ["probabilities", "logits"] if fmt == "onnx" else ["probabilities"]


def _sidecar(model: Model, fmt: ExportFormat) -> dict:
    from fcnet_cli import __version__

    meta_bytes = (model.checkpoint.dir / "meta.json").read_bytes()
    what = ({"targets": list(model.target.names)} if model.task == "regression"
            else {"classes": model.classes_.tolist()})
    return {
        "format": "fcnet-export", "version": 1, "fcnet_version": __version__,
        "runtime": fmt, "task": model.task,
        "input": {"name": "features", "shape": ["batch", model.n_inputs],
                  "dtype": "float32"},
        "outputs": _outputs(model, fmt),
        "feature_names": model.spec.input_names,
        **what,
        "preprocessing": "normalization applied inside the graph: give raw feature values",
        "source_checkpoint": {"path": str(model.checkpoint.dir), "sha256": model.sha256,
                              "meta_sha256": hashlib.sha256(meta_bytes).hexdigest()},
    }


def _example(model: Model) -> torch.Tensor:
    # two rows: a batch of one could let the exporter specialize the batch axis to 1
    return torch.zeros(2, model.n_inputs)


def _graph(model: Model, fmt: ExportFormat) -> nn.Module:
    """What is exported: raw features (batch, F) → the sidecar's outputs."""
    if model.task == "regression":
        target = model.target
        return Predictions(model.module, torch.tensor(target.mean, dtype=torch.float32),
                           torch.tensor(target.std, dtype=torch.float32)).eval()
    return (ProbabilitiesAndLogits if fmt == "onnx" else Probabilities)(model.module).eval()


def _write_onnx(model: Model, path: Path) -> None:
    graph = _graph(model, "onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (_example(model),), str(path), dynamo=True,
                          input_names=["features"], output_names=_outputs(model, "onnx"),
                          dynamic_shapes=({0: torch.export.Dim("batch")},),
                          external_data=False, verbose=False)


def _write_torchscript(model: Model, path: Path) -> None:
    graph = _graph(model, "torchscript")
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(graph), str(path))


def export_model(model: Model, out: Path, fmt: str, overwrite: bool = False) -> ExportReport:
    """Write ``out`` (ONNX or TorchScript) and its sidecar ``out.json``, each atomically.

    Raises:
        UsageError: unknown format, a missing export package, or an output that exists
            (without ``overwrite``), sits in a missing folder, or is the checkpoint itself.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)} (got {fmt!r})")
    out = Path(out)
    side = sidecar_path(out)
    weights = model.checkpoint.dir / "model.safetensors"
    for path in (out, side):
        check_output(path, [weights, model.checkpoint.dir / "meta.json"], overwrite)
    if fmt == "onnx":
        require_onnx()
    with staged_output(out) as tmp:
        (_write_onnx if fmt == "onnx" else _write_torchscript)(model, tmp)
        with staged_output(side) as tmp_side:
            tmp_side.write_text(json.dumps(_sidecar(model, fmt), indent=2) + "\n", "utf-8")
    return ExportReport(out, side, fmt)  # type: ignore[arg-type]

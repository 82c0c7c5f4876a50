"""Export a checkpoint to ONNX or a torch.export program (.pt2), with a JSON sidecar.

ONNX (`fmt="onnx"`): a model trained on a table (CSV/Parquet) takes its RAW columns, one
input per column named as the column, shape (batch, 1): float32 for numeric and date
columns (NaN = missing), string for categorical ones ("" = missing). Imputation, missing
indicators, one-hot encoding (`onnx_prep`), the input divisor, the normalization, the network
and the head are all inside. A model of a positional data set (NPZ, bundled and image sets,
matched by width everywhere in fcnet) takes one ``features`` input (batch, F) float32.
Outputs: classification ``probabilities`` and ``logits`` (batch, C); regression
``predictions`` (batch, T) in the target's own units.

torch.export (`fmt="pt2"`, loaded with ``torch.export.load(path).module()``): a program takes
tensors only, never strings, so it takes ``features`` (batch, F) float32: the encoded columns
before the input divisor (a table's categories one-hot, cells imputed, indicators; an image's
raw pixels) and holds the input divisor, the normalization, the network and the head; it
returns the probabilities (classification) or the predictions (regression). The sidecar's
``columns`` says how each raw column is encoded. ``torchscript`` is a deprecated alias of ``pt2``
(torch.jit is deprecated in favour of torch.export).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, get_args

import torch
from torch import nn

from fcnet_cli.config import ExportFormat
from fcnet_cli.config.schema import TABLE_DATASETS
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import UsageError
from fcnet_cli.serve.model import Model
from fcnet_cli.serve.writer import check_output, staged_output

__all__ = ["EXPORT_FORMATS", "ExportFormat", "ExportReport", "Network", "export_model",
           "sidecar_path"]

EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
# what torch's ONNX exporter (dynamo=True) imports; onnxruntime only runs the result
ONNX_PACKAGES = ("onnx", "onnxscript")


class Network(nn.Module):
    """Input divisor → ``module`` (normalization + MLP) → softmax or un-standardization.

    (batch, F) float32 → probabilities (batch, C) (and the logits when ``logits``), or the
    regression predictions (batch, T) in the target's units.
    """

    def __init__(self, model: Model, divisor: float, *, logits: bool):
        super().__init__()
        self.module = model.module
        self.divisor = float(divisor)
        self.logits = logits
        self.regression = model.task == "regression"
        mean, std = (model.target.mean, model.target.std) if self.regression else ([0.], [1.])
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1))

    def forward(self, x: torch.Tensor) -> Any:
        if self.divisor != 1.0:  # image pixels: as `encode_array`, x / float32(divisor)
            x = x / self.divisor
        z = self.module(x)
        if self.regression:  # the float32 ops of `Target.unstandardize`
            return z * self.std + self.mean
        p = torch.softmax(z, dim=-1)
        return (p, z) if self.logits else p


@dataclass
class ExportReport:
    path: Path
    sidecar: Path
    format: ExportFormat  # what was written: onnx or pt2


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


def raw_inputs(model: Model) -> bool:
    """Whether the ONNX graph takes raw columns by name (a model of a CSV/Parquet table)."""
    return model.experiment.data.dataset in TABLE_DATASETS


def _outputs(model: Model, fmt: ExportFormat) -> list[dict[str, Any]]:
    if model.task == "regression":
        names = ["predictions"]
        columns = list(model.target.names)
    else:
        names = ["probabilities", "logits"] if fmt == "onnx" else ["probabilities"]
        columns = model.classes_.tolist()
    out = [{"name": n, "dtype": "float32", "shape": ["batch", len(columns)],
            "columns": columns} for n in names]
    if model.ensemble > 1 or model.member_weights:  # the graph runs every member, averages
        mean = "weighted mean" if model.member_weights else "mean"  # greedy selection's weights
        values = {"probabilities": f"the {mean} of the {model.ensemble} members' probabilities",
                  "logits": "log of the members' mean probability (softmax of it = "
                            "probabilities)",
                  "predictions": f"the {mean} of the {model.ensemble} members' predictions"}
        for o in out:
            o["values"] = values[str(o["name"])]
    return out


def _features_input(model: Model, *, raw: bool) -> dict[str, Any]:
    prep = model.spec.prep
    if raw:
        what = "raw values, columns by position (the input divisor is applied inside)"
    elif prep.input_divisor != 1.0:
        what = f"raw values, columns by position (divided by {prep.input_divisor:g} inside)"
    else:
        what = ("the encoded columns `encoded_names`, un-normalized: as "
                "fcnet_cli.load_model(...).features(frame) computes them")
    return {"name": "features", "dtype": "float32", "shape": ["batch", prep.in_features],
            "columns": prep.input_names if not raw else prep.feature_names, "values": what,
            "missing": "not accepted: NaN gives NaN outputs"}


PREPROCESSING = {
    "onnx": "inside the graph: imputation, missing indicators, one-hot encoding (an unseen "
            "category is all zeros), input divisor, normalization; give each raw column as "
            "its own (batch, 1) input (see `inputs`)",
    "onnx-positional": "inside the graph: input divisor and normalization; give the raw "
                       "features (batch, F) in `feature_names` order",
    "pt2": "torch.export programs take tensors, not strings: encode the raw columns as "
           "`columns` says (imputation, one-hot, missing indicators) into `encoded_names` "
           "order; the input divisor and normalization are inside the program",
}


def _sidecar(model: Model, fmt: ExportFormat) -> dict:
    from fcnet_cli import __version__
    from fcnet_cli.serve.onnx_prep import describe_inputs

    prep = model.spec.prep
    meta_bytes = (model.checkpoint.dir / RunDir.META).read_bytes()
    what = ({"targets": list(model.target.names)} if model.task == "regression"
            else {"classes": model.classes_.tolist()})
    by_name = fmt == "onnx" and raw_inputs(model)
    inputs = describe_inputs(prep) if by_name else [_features_input(model, raw=fmt == "onnx")]
    key = fmt if by_name or fmt == "pt2" else "onnx-positional"
    return {
        "format": "fcnet-export", "version": 2, "fcnet_version": __version__,
        "runtime": fmt, "task": model.task, "ensemble": model.ensemble,
        "inputs": inputs, "outputs": _outputs(model, fmt),
        "feature_names": prep.feature_names, "encoded_names": prep.input_names,
        **what,
        "preprocessing": PREPROCESSING[key],
        **({"columns": describe_inputs(prep)} if fmt == "pt2" else {}),
        "load": ("onnxruntime.InferenceSession(path)" if fmt == "onnx"
                 else "torch.export.load(path).module()"),
        "source_checkpoint": {"path": str(model.checkpoint.dir), "sha256": model.sha256,
                              "meta_sha256": hashlib.sha256(meta_bytes).hexdigest()},
    }


def _example(model: Model) -> torch.Tensor:
    # two rows: a batch of one could let the exporter specialize the batch axis to 1
    return torch.zeros(2, model.n_inputs)


def _batch() -> dict[int, Any]:
    return {0: torch.export.Dim("batch")}


def _network_onnx(model: Model, input_name: str, divisor: float) -> Any:
    """The network part as an ONNX ModelProto: `input_name` (batch, F) → the outputs."""
    from fcnet_cli.serve.onnx_prep import OPSET

    names = [o["name"] for o in _outputs(model, "onnx")]
    graph = Network(model, divisor, logits=model.task != "regression").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (_example(model),), dynamo=True,
                                    input_names=[input_name], output_names=names,
                                    dynamic_shapes=(_batch(),), opset_version=OPSET,
                                    verbose=False)
    assert program is not None  # no file given: the exporter returns the program
    return program.model_proto


def onnx_model(model: Model) -> Any:
    """The whole ONNX model (checked): raw columns (or `features`) → the outputs."""
    import onnx

    from fcnet_cli.serve.onnx_prep import free_prefix, preprocessing_model

    prep = model.spec.prep
    if not raw_inputs(model):
        proto = _network_onnx(model, "features", prep.input_divisor)
    else:
        outputs = [o["name"] for o in _outputs(model, "onnx")]
        clash = [n for n in prep.feature_names if n in outputs]
        if clash:
            raise UsageError(f"cannot export to ONNX: the column '{clash[0]}' has the name of "
                             f"a graph output ({', '.join(outputs)}); rename it and retrain")
        prefix = free_prefix(prep.feature_names)
        net = onnx.compose.add_prefix(_network_onnx(model, "encoded", 1.0), prefix,
                                      rename_outputs=False)
        opset = next(o.version for o in net.opset_import if o.domain in ("", "ai.onnx"))
        pre = preprocessing_model(prep, prefix + "encoded", opset, net.ir_version,
                                  prefix + "prep.")
        proto = onnx.compose.merge_models(pre, net, io_map=[(prefix + "encoded",) * 2],
                                          producer_name="fcnet")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _write_onnx(model: Model, path: Path) -> None:
    import onnx

    onnx.save(onnx_model(model), str(path))


def _write_pt2(model: Model, path: Path) -> None:
    graph = Network(model, model.spec.prep.input_divisor, logits=False).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(graph, (_example(model),), dynamic_shapes=(_batch(),))
    buffer = io.BytesIO()  # torch names a file not ending in .pt2 (the staged one) in a log line
    torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())


def _pt2_name(out: Path, fmt: str) -> Path:
    """A torch.export program's file must end in .pt2 (torch.export.load expects it): the
    deprecated ``torchscript`` format writes ``model.pt`` as ``model.pt2``."""
    if fmt == "torchscript" and out.suffix != ".pt2":
        return out.with_suffix(".pt2")
    if fmt == "pt2" and out.suffix != ".pt2":
        raise UsageError(f"{out}: a torch.export program's file name must end in .pt2 "
                         f"(torch.export.load expects it)")
    return out


def export_model(model: Model, out: Path, fmt: str, *, overwrite: bool = False) -> ExportReport:
    """Write ``out`` (ONNX, or a torch.export program) and its sidecar ``out.json``, each
    atomically. ``torchscript`` is a deprecated alias of ``pt2`` that names the file .pt2.

    Raises:
        UsageError: unknown format, a missing export package, a column named as a graph
            output, or an output that exists (without ``overwrite``), sits in a missing
            folder, or is the checkpoint itself.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)} (got {fmt!r})")
    kind: ExportFormat = "onnx" if fmt == "onnx" else "pt2"
    out = _pt2_name(Path(out), fmt)
    side = sidecar_path(out)
    weights = model.checkpoint.dir / RunDir.WEIGHTS
    for path in (out, side):
        check_output(path, [weights, model.checkpoint.dir / RunDir.META], overwrite=overwrite)
    if kind == "onnx":
        require_onnx()
    with staged_output(out, overwrite=overwrite) as tmp:
        (_write_onnx if kind == "onnx" else _write_pt2)(model, tmp)
        with staged_output(side, overwrite=overwrite) as tmp_side:
            tmp_side.write_text(json.dumps(_sidecar(model, kind), indent=2) + "\n", "utf-8")
    return ExportReport(out, side, kind)

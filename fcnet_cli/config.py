"""The experiment schema, strict YAML loading and dotted ``--set`` overrides.

No torch import here: ``fcnet validate`` and ``fcnet --help`` must stay fast.
Every field is documented once, with its unit, and named like the PyTorch argument it feeds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from fcnet_cli.errors import ConfigError
from fcnet_cli.yamlio import apply_overrides, load_yaml, parse_override, read_config_file

__all__ = [
    "ConfigError",
    "DataConfig",
    "EarlyStoppingConfig",
    "Experiment",
    "LossConfig",
    "LrFindMode",
    "MAX_SEEDS",
    "ModelConfig",
    "OptimizerConfig",
    "OutputConfig",
    "RegularizationConfig",
    "SYNTHETIC_DATASETS",
    "SchedulerConfig",
    "TrainingConfig",
    "apply_overrides",
    "describe_schema",
    "dump_experiment",
    "flatten",
    "layout_key",
    "load_experiment",
    "load_yaml",
    "parse_override",
    "read_config_file",
    "validate_experiment",
]

Dataset = Literal[
    "digits", "iris", "wine", "breast_cancer",
    "moons", "circles", "spirals",
    "mnist", "fashion_mnist", "kmnist", "cifar10",
    "csv", "npz",
]
Activation = Literal["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "silu"]
Normalize = Literal["standard", "minmax", "none"]
RegType = Literal["none", "l1", "l2", "elastic_net"]
OptName = Literal["sgd", "adam", "adamw", "rmsprop"]
SchedName = Literal["none", "step", "multistep", "exponential", "cosine", "plateau", "onecycle"]
Monitor = Literal["val_loss", "val_accuracy"]
Device = Literal["auto", "cpu", "cuda", "mps"]
LrFindMode = Literal["both", "ramp", "population"]  # `fcnet lr-find --mode`

FILE_DATASETS = ("csv", "npz")
SYNTHETIC_DATASETS = ("moons", "circles", "spirals")  # 2-D, generated from data.split_seed
MAX_SEEDS = 256  # most seeds `training.seeds` trains together (a sweep's default max_population)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              validate_default=False)


class DataConfig(_Strict):
    dataset: Dataset = Field("digits", description="data set name; csv/npz read `path`")
    path: str | None = Field(
        None, validate_default=True,
        description="CSV or NPZ file (relative paths are relative to the experiment file)")
    target: str = Field("label", description="name of the CSV label column")
    root: str = Field(
        "data", description="folder of torchvision data sets (relative to the experiment file)")
    download: bool = Field(False, description="allow torchvision to download the data set")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="fraction of the training pool held out for validation")
    test_fraction: float = Field(
        0.2, ge=0, lt=1,
        description="fraction held out for test (sets without an official test split)")
    normalize: Normalize = Field(
        "standard", description="feature scaling, fitted on the training split only")
    split_seed: int = Field(0, ge=0, description="seed of the stratified train/val/test split "
                                                "(and of the points of moons/circles/spirals)")
    label_noise: float = Field(
        0.0, ge=0, lt=1,
        description="fraction of the training split's labels replaced by another class, "
                    "chosen from split_seed (val and test keep their labels): to study "
                    "memorization")
    samples: int = Field(600, ge=20, le=1_000_000,
                         description="moons/circles/spirals: points generated (both classes)")
    noise: float | None = Field(
        None, ge=0, le=10,
        description="moons/circles/spirals: std of the Gaussian noise added to each coordinate "
                    "(null: 0.2 moons, 0.08 circles, 0.1 spirals; the sets span about [-1, 2])")

    @field_validator("path")
    @classmethod
    def _path_needed(cls, v: str | None, info: ValidationInfo) -> str | None:
        ds = info.data.get("dataset")
        if ds in FILE_DATASETS and not v:
            raise ValueError(f"dataset '{ds}' needs data.path")
        return v

    @field_validator("test_fraction")
    @classmethod
    def _fractions(cls, v: float, info: ValidationInfo) -> float:
        val = info.data.get("val_fraction")
        if isinstance(val, float) and val + v >= 0.9:
            raise ValueError(f"val_fraction + test_fraction must be < 0.9 (got {val + v:g})")
        return v


class ModelConfig(_Strict):
    hidden: list[int] = Field(
        default_factory=lambda: [128, 64],
        description="widths of the hidden layers, input side first ([] = softmax regression)")
    activation: Activation = Field("relu", description="non-linearity after each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1,
                           description="probability of zeroing a hidden unit (training only)")
    batch_norm: bool = Field(False, description="BatchNorm1d between each hidden Linear and "
                                                "its activation")

    @field_validator("hidden")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        bad = [w for w in v if w <= 0]
        if bad:
            raise ValueError(f"layer widths must be > 0 (got {v})")
        return v


class LossConfig(_Strict):
    label_smoothing: float = Field(0.0, ge=0, lt=1,
                                   description="nn.CrossEntropyLoss label smoothing")


class RegularizationConfig(_Strict):
    type: RegType = Field("none", description="explicit penalty added to the loss")
    strength: float = Field(
        0.0, ge=0,
        description="λ per batch loss: l1 adds λ·Σ|w|, l2 adds λ·Σw² (gradient 2λ·w), "
                    "elastic_net adds λ·(l1_ratio·Σ|w| + (1−l1_ratio)·Σw²)")
    l1_ratio: float = Field(0.5, ge=0, le=1, description="elastic_net mix: 1 = pure L1")
    include_bias: bool = Field(False, description="also penalize biases (and weight_decay "
                                                  "biases); default: weight matrices only")


class OptimizerConfig(_Strict):
    name: OptName = Field("sgd", description="torch.optim algorithm")
    lr: float = Field(0.01, gt=0, description="learning rate (step size per batch)")
    momentum: float = Field(0.0, ge=0, lt=1,
                            description="SGD/RMSprop momentum (torch.optim semantics)")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD, needs momentum > 0)")
    dampening: float = Field(0.0, ge=0, lt=1, description="SGD momentum dampening")
    weight_decay: float = Field(
        0.0, ge=0,
        description="per step: sgd/adam/rmsprop add weight_decay·w to the gradient; "
                    "adamw multiplies w by (1 − lr·weight_decay)")
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999],
                               description="Adam/AdamW moment decay rates [β1, β2]")
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW/RMSprop denominator term")
    alpha: float = Field(0.99, gt=0, lt=1, description="RMSprop squared-gradient decay rate")

    @field_validator("nesterov")
    @classmethod
    def _nesterov(cls, v: bool, info: ValidationInfo) -> bool:
        if v and "momentum" in info.data and not info.data["momentum"]:
            raise ValueError("nesterov needs momentum > 0")
        if v and info.data.get("name") not in (None, "sgd"):
            raise ValueError("nesterov applies to sgd only")
        return v

    @field_validator("dampening")
    @classmethod
    def _dampening(cls, v: float, info: ValidationInfo) -> float:
        if v and info.data.get("nesterov"):
            raise ValueError("nesterov needs dampening = 0")
        return v

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not all(0 <= b < 1 for b in v):
            raise ValueError(f"betas must be two numbers in [0, 1) (got {v})")
        return v


class SchedulerConfig(_Strict):
    name: SchedName = Field(
        "none", description="learning-rate decay; onecycle steps per batch, the rest per epoch")
    step_size: int = Field(10, gt=0, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step/multistep/exponential: decay factor")
    milestones: list[int] = Field(default_factory=list,
                                  description="multistep: epochs at which lr is multiplied "
                                              "by gamma (increasing)")
    t_max: int | None = Field(None, gt=0, description="cosine: period in epochs "
                                                      "(default: epochs after warmup)")
    eta_min: float = Field(0.0, ge=0, description="cosine: lowest learning rate")
    monitor: Monitor = Field("val_loss", description="plateau: validation metric watched")
    factor: float = Field(0.1, gt=0, lt=1, description="plateau: lr multiplier on a plateau")
    patience: int = Field(5, ge=0, description="plateau: epochs without improvement tolerated")
    threshold: float = Field(1e-4, ge=0, description="plateau: relative improvement "
                                                     "that counts")
    cooldown: int = Field(0, ge=0, description="plateau: epochs to wait after a decay")
    min_lr: float = Field(0.0, ge=0, description="plateau: lower bound of the lr")
    max_lr: float | None = Field(None, gt=0, description="onecycle: peak lr "
                                                         "(default: optimizer.lr)")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps "
                                                         "spent increasing the lr")
    warmup_epochs: int = Field(0, ge=0, description="linear warmup epochs before the schedule: "
                                                    "lr·(e+1)/(warmup_epochs+1) at epoch e")

    @field_validator("milestones")
    @classmethod
    def _milestones(cls, v: list[int]) -> list[int]:
        if any(m <= 0 for m in v):
            raise ValueError(f"milestones must be > 0 (got {v})")
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"milestones must be increasing (got {v})")
        return v

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup(cls, v: int, info: ValidationInfo) -> int:
        if v and info.data.get("name") == "onecycle":
            raise ValueError("onecycle has its own warm-up; use pct_start")
        return v


class EarlyStoppingConfig(_Strict):
    monitor: Monitor = Field("val_loss", description="validation metric watched")
    patience: int | None = Field(None, gt=0, description="epochs without improvement before "
                                                        "stopping (null = off)")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainingConfig(_Strict):
    epochs: int = Field(20, gt=0, description="passes over the training split")
    batch_size: int = Field(64, gt=0, description="examples per gradient step")
    seed: int = Field(0, ge=0, description="seed of initialization, batch order and dropout")
    seeds: int = Field(1, ge=1, le=MAX_SEEDS,
                       description="train seeds seed, seed+1, ... as one population; > 1 "
                                   "writes a group directory with mean ± std of every metric")
    device: Device = Field("auto", description="auto = cuda if available, else cpu")
    early_stopping: EarlyStoppingConfig = Field(default_factory=lambda: EarlyStoppingConfig())
    grad_clip: float | None = Field(None, gt=0, description="max global gradient L2 norm "
                                                           "per step (null = off)")


class OutputConfig(_Strict):
    dir: str = Field("runs", description="root of run directories (relative to the "
                                         "working directory)")
    name: str | None = Field(None, description="experiment name (default: the file's stem)")
    tensorboard: bool = Field(False, description="also write the metrics.csv scalars as "
                                                 "TensorBoard event files in <run dir>/tensorboard "
                                                 "(needs the tensorboard extra)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-' (got {v!r})")
        return v


class Experiment(_Strict):
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    loss: LossConfig = Field(default_factory=lambda: LossConfig())
    regularization: RegularizationConfig = Field(default_factory=lambda: RegularizationConfig())
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig())
    scheduler: SchedulerConfig = Field(default_factory=lambda: SchedulerConfig())
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig())
    output: OutputConfig = Field(default_factory=lambda: OutputConfig())

    @property
    def name(self) -> str:
        return self.output.name or "experiment"


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    model: type[BaseModel] = Experiment
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _describe_error(err: Any, where: str, path: str) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        tail = f"; did you mean '{hint[0]}'?" if hint else (
            f"; known keys: {', '.join(known)}" if known else "")
        if where.startswith("--set"):
            return f"{where}: unknown key{tail}"
        return f"{where}: {path}: unknown key{tail}"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if kind in ("missing",) or isinstance(value, dict) else f" (got {value!r})"
    if kind == "finite_number":
        msg = "must be a finite number"
    if shown and shown[1:-1] in msg:
        shown = ""
    if where.startswith("--set"):
        return f"{where}: {msg}{shown}"
    return f"{where}: {path}: {msg}{shown}"


def validate_experiment(raw: Any, lines: dict[str, int] | None = None, origin: str = "<config>",
                        base_dir: Path | None = None, default_name: str | None = None,
                        overridden: set[str] | None = None) -> Experiment:
    """Validate a raw mapping; raise ConfigError listing every problem (one line each)."""
    lines = lines or {}
    overridden = overridden or set()
    if raw is None:
        raise ConfigError([f"{origin}: empty file (expected a mapping of sections)"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{origin}:1: top level must be a mapping of sections "
                           f"(got {type(raw).__name__})"])
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            path = ".".join(str(p) for p in err["loc"])
            if path in overridden:
                where = f"--set {path}"
            else:
                probe = path
                while probe and probe not in lines:
                    probe = probe.rpartition(".")[0]
                where = f"{origin}:{lines.get(probe, 1)}"
            problems.append(_describe_error(err, where, path))
        raise ConfigError(problems) from None
    return _resolve(exp, base_dir, default_name)


def _resolve(exp: Experiment, base_dir: Path | None, default_name: str | None) -> Experiment:
    data = exp.data
    updates: dict[str, Any] = {}
    if base_dir is not None:
        if data.path:
            updates["path"] = str((base_dir / data.path).resolve())
        updates["root"] = str((base_dir / data.root).resolve())
    new = exp.model_copy(update={"data": data.model_copy(update=updates)}) if updates else exp
    if new.output.name is None and default_name:
        out = new.output.model_copy(update={"name": default_name})
        new = new.model_copy(update={"output": out})
    return new


def load_experiment(path: str | Path, overrides: Iterable[str] = ()) -> Experiment:
    """Read, override and validate an experiment file. Raises ConfigError."""
    p = Path(path)
    raw, lines = read_config_file(p)
    if raw is None:
        raise ConfigError([f"{p}: empty file (expected a mapping of sections)"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{p}:1: top level must be a mapping of sections "
                           f"(got {type(raw).__name__})"])
    merged, touched = apply_overrides(raw, overrides)
    return validate_experiment(merged, lines, str(p), p.parent, p.stem, touched)


def dump_experiment(exp: Experiment) -> str:
    """The resolved config as YAML (what `config.yaml` in a run directory holds)."""
    return yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False)


def layout_key(exp: Experiment) -> str:
    """Everything members of one population must share (DESIGN.md: the layout)."""
    m, t = exp.model, exp.training
    key = {"data": exp.data.model_dump(mode="json"), "hidden": m.hidden,
           "activation": m.activation, "batch_norm": m.batch_norm,
           "batch_size": t.batch_size, "epochs": t.epochs, "device": t.device,
           "optimizer": exp.optimizer.name,
           "include_bias": exp.regularization.include_bias}
    return yaml.safe_dump(key, sort_keys=True)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def describe_schema() -> list[tuple[str, str, str, str]]:
    """Every field as (dotted path, type, default, description)."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            ann = f.annotation
            path = f"{prefix}{name}"
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, path + ".")
                continue
            default = f.get_default(call_default_factory=True)
            tname = str(ann).replace("typing.", "").replace("<class '", "").replace("'>", "")
            rows.append((path, tname, "null" if default is None else repr(default),
                         f.description or ""))

    walk(Experiment, "")
    return rows

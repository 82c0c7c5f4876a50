"""The experiment schema: every field documented once, with its unit, named like the PyTorch
argument it feeds; and the names of the choices, shared by the config, the engine and the CLI.

No torch import here: ``fcnet validate`` and ``fcnet --help`` must stay fast.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fcnet_cli import metrics as registry

__all__ = [
    "CLASSIFICATION_METRICS",
    "FILE_DATASETS",
    "MAXIMIZED",
    "METRICS",
    "NORMALIZATIONS",
    "NUM_EMBEDDINGS",
    "REGRESSION_DATASETS",
    "REGRESSION_METRICS",
    "SPLITS",
    "TABLE_DATASETS",
    "DataConfig",
    "EarlyStoppingConfig",
    "EnsembleConfig",
    "EnsembleKind",
    "EnsembleSelect",
    "EngineName",
    "Experiment",
    "ExportFormat",
    "LossConfig",
    "LrFindMode",
    "MAX_SEEDS",
    "MlflowConfig",
    "ModelConfig",
    "Monitor",
    "OptimizerConfig",
    "OutputConfig",
    "PredictFormat",
    "Precision",
    "RegularizationConfig",
    "SYNTHETIC_DATASETS",
    "SchedulerConfig",
    "Split",
    "TrainingConfig",
    "describe_schema",
    "metric_mode",
]

Dataset = Literal[
    "digits", "iris", "wine", "breast_cancer", "diabetes",
    "moons", "circles", "spirals",
    "mnist", "fashion_mnist", "kmnist", "cifar10",
    "csv", "parquet", "npz",
]
Activation = Literal["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "silu"]
Normalize = Literal["standard", "minmax", "robust", "none"]
NumEmbedding = Literal["none", "piecewise_linear", "periodic"]
RegType = Literal["none", "l1", "l2", "elastic_net"]
OptName = Literal["sgd", "adam", "adamw", "rmsprop"]
SchedName = Literal["none", "step", "multistep", "exponential", "cosine", "plateau", "onecycle"]
Task = Literal["classification", "regression"]
Missing = Literal["error", "mean", "median", "most_frequent"]
UnknownCategories = Literal["ignore", "error"]
MissingTarget = Literal["error", "drop"]
EnsembleSelect = Literal["none", "greedy"]  # model.ensemble.select
EnsembleKind = Literal["independent", "shared"]  # model.ensemble_kind
LossName = Literal["cross_entropy", "mse", "huber", "l1"]
# validation metrics an epoch reports; classification ones (ROC-AUC and PR-AUC: binary
# tasks only) and regression ones (original units)
Monitor = Literal["val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1",
                  "val_roc_auc", "val_pr_auc", "val_rmse", "val_mae", "val_r2"]
CLASSIFICATION_METRICS: tuple[str, ...] = ("val_accuracy", "val_balanced_accuracy", "val_macro_f1",
                          "val_roc_auc", "val_pr_auc")
REGRESSION_METRICS: tuple[str, ...] = ("val_rmse", "val_mae", "val_r2")
Device = Literal["auto", "cpu", "cuda", "mps"]
LrFindMode = Literal["both", "ramp", "population"]  # `fcnet lr-find --mode`
SYNTHETIC_DATASETS = ("moons", "circles", "spirals")  # 2-D, generated from data.split_seed
MAX_SEEDS = 256  # most seeds `training.seeds` trains together (a sweep's default max_population)
EngineName = Literal["auto", "autograd"]
Precision = Literal["fp32", "tf32", "bf16"]  # `training.precision` (CUDA only beyond fp32)
Split = Literal["train", "val", "test"]
# `fcnet predict --format` and `fcnet export --format` (fcnet_cli.serve)
PredictFormat = Literal["csv", "parquet", "json"]
ExportFormat = Literal["onnx", "pt2", "torchscript"]  # torchscript: deprecated alias of pt2

FILE_DATASETS = ("csv", "parquet", "npz")
TABLE_DATASETS = ("csv", "parquet")
REGRESSION_DATASETS = ("diabetes",)
NORMALIZATIONS: tuple[str, ...] = get_args(Normalize)
NUM_EMBEDDINGS: tuple[str, ...] = get_args(NumEmbedding)
MAX_BINS = 1024  # model.num_bins: more than this many quantile bins only repeats values
MAX_FREQUENCIES = 256  # model.num_frequencies
METRICS: tuple[str, ...] = get_args(Monitor)
# the monitorable metrics a larger value of which is better (from the metric registry)
MAXIMIZED = tuple(m for m in METRICS if registry.metric_mode(m) == "max")
SPLITS: tuple[str, ...] = get_args(Split)
# Upper bounds on counts: far beyond any real run, low enough that a typo (10^24 epochs) or a
# hostile file is refused at validation instead of overflowing torch or running forever.
MAX_COUNT = 1_000_000  # epochs, patience, step sizes, milestones
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit value
MAX_WIDTH = 2**31 - 1  # larger widths are refused by the memory estimate long before this
MAX_LAYERS = 100
MAX_BATCH = 1 << 24


def metric_mode(metric: str) -> Literal["min", "max"]:
    """Whether a larger value of a validation metric is better ("max") or a smaller one
    (`fcnet_cli.metrics`, the one registry)."""
    return registry.metric_mode(metric)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              validate_default=False)


class DataConfig(_Strict):
    dataset: Dataset = Field("digits", description="data set name; csv/parquet/npz read `path`")
    path: str | None = Field(
        None, validate_default=True,
        description="CSV (.csv, .csv.gz), Parquet or NPZ file (relative paths are relative "
                    "to the experiment file)")
    separator: str | None = Field(
        None, description="CSV column separator, one character (',' ';' '|'; a tab as tab or "
                          "'\\t'); null: detected from the header line (, ; tab |)")
    decimal_comma: bool = Field(
        False, description="CSV numbers are written with a decimal comma (3,5); needs a "
                           "separator other than ','")
    target: str | list[str] = Field(
        "label", description="table column(s) to predict; a list only for task: regression")
    features: list[str] | None = Field(
        None, description="table columns used as inputs (default: all but target and drop)")
    drop: list[str] = Field(default_factory=list,
                            description="table columns to ignore, e.g. ids")
    categorical: list[str] = Field(
        default_factory=list,
        description="table columns one-hot encoded even if numeric (string and boolean "
                    "columns always are)")
    max_categories: int = Field(100, gt=0, description="most categories a categorical column "
                                                       "may have (fitted on the training split)")
    missing: Missing = Field(
        "error", description="empty cells in feature columns: error, or fill with the "
                             "training split's mean / median / most frequent value")
    missing_indicator: bool = Field(False, description="add a 0/1 column per feature with "
                                                       "imputed cells")
    unknown_categories: UnknownCategories = Field(
        "ignore", description="a category the training split never saw, in predict, eval "
                              "--data and load_model: ignore (encoded as all zeros, with one "
                              "notice naming the values) or error (exit 2 naming the row)")
    missing_target: MissingTarget = Field(
        "error", description="rows whose target cell is empty: error (counting them), or "
                             "drop them before splitting (the count is shown)")
    root: str = Field(
        "data", description="folder of torchvision data sets (relative to the experiment file)")
    download: bool = Field(False, description="allow torchvision to download the data set")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="fraction of the training pool held out for validation")
    test_fraction: float = Field(
        0.2, ge=0, lt=1,
        description="fraction held out for test (sets without an official test split)")
    normalize: Normalize = Field(
        "standard", description="feature scaling, fitted on the training split only: "
                                "standard (mean/std), minmax, robust (median/IQR, then the "
                                "smooth clip z/sqrt(1+(z/3)²) of outliers) or none")
    split_seed: int = Field(0, ge=0, le=MAX_SEED,
                            description="seed of the stratified train/val/test split "
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

    @field_validator("separator")
    @classmethod
    def _separator(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = "\t" if v.lower() == "tab" else v
        if len(v) != 1 or v in "\"\r\n":
            raise ValueError(f"separator must be one character other than a quote or a "
                             f"newline, e.g. \";\" or \"\\t\" (got {v!r})")
        return v

    @field_validator("decimal_comma")
    @classmethod
    def _decimal_comma(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("separator") == ",":
            raise ValueError("decimal_comma: true needs a separator other than \",\" (the "
                             "comma would end the cell); set data.separator, e.g. \";\"")
        return v

    @field_validator("test_fraction")
    @classmethod
    def _fractions(cls, v: float, info: ValidationInfo) -> float:
        val = info.data.get("val_fraction")
        if isinstance(val, float) and val + v >= 0.9:
            raise ValueError(f"val_fraction + test_fraction must be < 0.9 (got {val + v:g})")
        return v


class EnsembleConfig(_Strict):
    """`model.ensemble` as a mapping: a population and how it becomes one model."""

    size: int = Field(16, ge=1, le=MAX_SEEDS,
                      description="members trained (one population per layer width)")
    select: EnsembleSelect = Field(
        "none", description="none: size seeds of the experiment, all kept, mean (as "
                            "model.ensemble: size); greedy: member 0 is the experiment, the "
                            "others draw lr, weight decay, dropout, label smoothing and width "
                            "from training.seed, and greedy selection with replacement on the "
                            "validation split keeps a weighted subset")
    rounds: int | None = Field(
        None, ge=1, le=MAX_COUNT,
        description="greedy: members added (with repetition); the prefix with the lowest "
                    "validation log loss (RMSE) is kept; weights = times chosen / members "
                    "kept; null = size")

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("select") != "greedy":
            raise ValueError("rounds applies to select: greedy only")
        return v

    @property
    def selection_rounds(self) -> int:
        return self.rounds if self.rounds is not None else self.size


def _ensemble_mapping(v: dict[str, Any]) -> EnsembleConfig:
    """`model.ensemble` as a mapping, its faults as one message naming the inner keys."""
    from fcnet_cli.config.problems import did_you_mean

    try:
        return EnsembleConfig.model_validate(v)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + did_you_mean(key, list(EnsembleConfig.model_fields))
            else:
                msg = err["msg"].removeprefix("Value error, ") + f" (got {err['input']!r})"
            lines.append(f"{key}: {msg}")
        raise ValueError("; ".join(lines)) from None


class ModelConfig(_Strict):
    hidden: list[int] = Field(
        default_factory=lambda: [128, 64],
        max_length=MAX_LAYERS,
        description="widths of the hidden layers, input side first ([] = softmax regression)")
    activation: Activation = Field("relu", description="non-linearity after each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1,
                           description="probability of zeroing a hidden unit (training only)")
    batch_norm: bool = Field(False, description="BatchNorm1d between each hidden Linear and "
                                                "its activation")
    ensemble: int | EnsembleConfig = Field(
        1, description="N (1..256): N members trained as one population (member k: "
                       "training.seed + k), each early-stopping on its own; one checkpoint "
                       "predicts the mean of their probabilities (regression: of their "
                       "predictions). A mapping {size, select, rounds}: select: greedy draws "
                       "size members' hyperparameters and keeps a weighted subset "
                       "(docs/ensembles.md)")
    ensemble_kind: EnsembleKind = Field(
        "independent",
        description="independent: each member a network of its own; shared: the members "
                    "share each layer's weight matrix and differ by a per-member input and "
                    "output scaling (±1 at init) and bias (BatchEnsemble, as in TabM): about "
                    "the parameters and cost of one network; needs ensemble > 1, no "
                    "select: greedy, no batch_norm (docs/ensembles.md)")

    # numerical embeddings: a preprocessing expansion of each numeric input in front of the
    # network (fitted on the training split, stored with the normalization; docs/embeddings.md)
    num_embeddings: NumEmbedding = Field(
        "none",
        description="each numeric column's normalized value becomes a vector: "
                    "piecewise_linear (one input per quantile bin of the training split, "
                    "Gorishniy et al. 2022), periodic (the value, then sin and cos of "
                    "2π·f·value for fixed frequencies f ~ N(0, periodic_sigma) drawn from "
                    "data.split_seed), or none")
    num_bins: int = Field(16, ge=1, le=MAX_BINS,
                          description="piecewise_linear: bins per numeric column, at training "
                                      "split quantiles (fewer where a column has fewer "
                                      "distinct values)")
    num_frequencies: int = Field(8, ge=1, le=MAX_FREQUENCIES,
                                 description="periodic: frequencies per numeric column (each "
                                             "gives a sin and a cos input)")
    periodic_sigma: float = Field(0.1, gt=0, le=1e3,
                                  description="periodic: standard deviation of the frequencies, "
                                              "in cycles per standard unit of the normalized "
                                              "value (RealMLP's PBLD initialization: 0.1)")

    @field_validator("ensemble", mode="before")
    @classmethod
    def _ensemble(cls, v: Any) -> Any:
        # one clear message per form instead of pydantic's per-branch union errors
        if isinstance(v, dict):
            return _ensemble_mapping(v)
        if isinstance(v, EnsembleConfig):
            return v
        if type(v) is int and not 1 <= v <= MAX_SEEDS:
            raise ValueError(f"ensemble must be in 1..{MAX_SEEDS} members (got {v})")
        if type(v) is not int and not isinstance(v, EnsembleConfig):
            raise ValueError(f"ensemble must be a number of members or a mapping "
                             f"{{size, select, rounds}} (got {v!r})")
        return v

    @field_validator("ensemble_kind")
    @classmethod
    def _kind(cls, v: EnsembleKind, info: ValidationInfo) -> EnsembleKind:
        if v != "shared":
            return v
        e = info.data.get("ensemble")
        if e is None:  # model.ensemble itself is wrong, and says so
            return v
        size = e if isinstance(e, int) else e.size
        if size < 2:
            raise ValueError(f"shared needs model.ensemble of 2 or more members; it is {size}")
        if isinstance(e, EnsembleConfig) and e.select == "greedy":
            raise ValueError("shared members share one set of hyperparameters: it cannot be "
                             "combined with model.ensemble.select: greedy")
        if info.data.get("batch_norm"):
            raise ValueError("shared cannot be combined with batch_norm: true (the members "
                             "would share batch statistics); set batch_norm: false")
        return v

    @property
    def ensemble_size(self) -> int:
        """Members trained: `ensemble` as a number, or its `size`."""
        e = self.ensemble
        return e if isinstance(e, int) else e.size

    @property
    def ensemble_select(self) -> EnsembleSelect:
        """How the trained members become the model: none (all, mean) or greedy."""
        e = self.ensemble
        return "none" if isinstance(e, int) else e.select

    @field_validator("hidden")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        bad = [w for w in v if w <= 0]
        if bad:
            raise ValueError(f"layer widths must be > 0 (got {v})")
        if any(w > MAX_WIDTH for w in v):
            raise ValueError(f"layer widths must be <= {MAX_WIDTH} (got {v})")
        return v


class LossConfig(_Strict):
    name: LossName | None = Field(
        None, description="cross_entropy (classification) or mse / huber / l1 on the "
                          "standardized target (regression); default: per task")
    label_smoothing: float = Field(0.0, ge=0, lt=1,
                                   description="nn.CrossEntropyLoss label smoothing")
    class_weights: Literal["none", "balanced"] | list[float] = Field(
        "none", description="nn.CrossEntropyLoss weight: none, balanced (n / (C·count_c) on "
                            "the training split) or one weight > 0 per class")
    huber_delta: float = Field(1.0, gt=0, description="huber: nn.HuberLoss delta, in standard "
                                                      "deviations of the target")

    @field_validator("class_weights")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or any(w <= 0 for w in v)):
            raise ValueError(f"class_weights must be one number > 0 per class (got {v})")
        return v


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
            raise ValueError("nesterov needs momentum > 0; for plain SGD turn it off too "
                             "(nesterov: false, or --set optimizer.nesterov=false)")
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
    step_size: int = Field(10, gt=0, le=MAX_COUNT, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step/multistep/exponential: decay factor")
    milestones: list[int] = Field(default_factory=list,
                                  description="multistep: epochs at which lr is multiplied "
                                              "by gamma (increasing)")
    t_max: int | None = Field(None, gt=0, le=MAX_COUNT,
                              description="cosine: period in epochs (default: epochs after "
                                          "warmup)")
    eta_min: float = Field(0.0, ge=0, description="cosine: lowest learning rate")
    monitor: Monitor = Field("val_loss", description="plateau: validation metric watched")
    factor: float = Field(0.1, gt=0, lt=1, description="plateau: lr multiplier on a plateau")
    patience: int = Field(5, ge=0, le=MAX_COUNT,
                          description="plateau: epochs without improvement tolerated")
    threshold: float = Field(1e-4, ge=0, description="plateau: relative improvement "
                                                     "that counts")
    cooldown: int = Field(0, ge=0, le=MAX_COUNT,
                          description="plateau: epochs to wait after a decay")
    min_lr: float = Field(0.0, ge=0, description="plateau: lower bound of the lr")
    max_lr: float | None = Field(None, gt=0, description="onecycle: peak lr "
                                                         "(default: optimizer.lr)")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps "
                                                         "spent increasing the lr")
    warmup_epochs: int = Field(0, ge=0, le=MAX_COUNT,
                               description="linear warmup epochs before the schedule: "
                                           "lr·(e+1)/(warmup_epochs+1) at epoch e")

    @field_validator("milestones")
    @classmethod
    def _milestones(cls, v: list[int]) -> list[int]:
        if any(m <= 0 or m > MAX_COUNT for m in v):
            raise ValueError(f"milestones must be in 1..{MAX_COUNT} (got {v})")
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
    monitor: Monitor = Field(
        "val_loss", description="validation metric watched (it also picks the best "
                                "checkpoint); val_roc_auc and val_pr_auc: binary tasks only")
    patience: int | None = Field(None, gt=0, le=MAX_COUNT,
                                 description="epochs without improvement before "
                                             "stopping (null = off)")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainingConfig(_Strict):
    epochs: int = Field(20, gt=0, le=MAX_COUNT, description="passes over the training split")
    batch_size: int = Field(64, gt=0, le=MAX_BATCH, description="examples per gradient step")
    seed: int = Field(0, ge=0, le=MAX_SEED,
                      description="seed of initialization, batch order and dropout")
    seeds: int = Field(1, ge=1, le=MAX_SEEDS,
                       description="train seeds seed, seed+1, ... as one population; > 1 "
                                   "writes a group directory with mean ± std of every metric")
    device: Device = Field("auto", description="auto = cuda if available, else cpu")
    early_stopping: EarlyStoppingConfig = Field(default_factory=lambda: EarlyStoppingConfig())
    grad_clip: float | None = Field(None, gt=0, description="max global gradient L2 norm "
                                                           "per step (null = off)")
    engine: EngineName = Field(
        "auto", description="auto = the hand-written forward/backward where the layout allows "
                            "it (summary.json says which ran and why); autograd = always "
                            "torch.autograd (the reference, for debugging)")
    precision: Precision = Field(
        "fp32", description="fp32 = float32 everywhere (every device); on CUDA only: tf32 = "
                            "float32 matrix products on the TF32 tensor cores; bf16 = the "
                            "forward autocast to bfloat16, float32 weights, gradients and "
                            "optimizer state (summary.json records it)")
    threads: int | None = Field(None, gt=0, description="CPU threads of torch "
                                                        "(torch.set_num_threads); null = the "
                                                        "cores available to the process "
                                                        "(CPU affinity and cgroup quota)")
    max_memory: float | None = Field(
        None, gt=0, description="GiB the estimated training memory (parameters, gradients, "
                                "optimizer state, activations, × members) may reach; "
                                "null = the device's free memory")


class MlflowConfig(_Strict):
    """`output.mlflow`: log runs to an MLflow tracking store (needs the mlflow extra)."""

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI: http(s)://host:port of a tracking server, or "
                          "sqlite:///path/mlflow.db; null = sqlite:///<output.dir>/mlflow.db "
                          "(artifacts in <output.dir>/mlartifacts)")
    experiment: str | None = Field(None, description="MLflow experiment name (default: the "
                                                     "experiment name, output.name)")
    run_name: str | None = Field(None, description="MLflow run name (default: the run "
                                                   "directory's id; seeds: seed-<seed> under "
                                                   "a parent run named after the group)")


class OutputConfig(_Strict):
    dir: str = Field("runs", description="root of run directories (relative to the "
                                         "working directory)")
    name: str | None = Field(None, description="experiment name (default: the file's stem)")
    tensorboard: bool = Field(False, description="also write the metrics.csv scalars as "
                                                 "TensorBoard event files in <run dir>/tensorboard "
                                                 "(needs the tensorboard extra)")
    mlflow: MlflowConfig | None = Field(
        None, description="log the run to MLflow (params, per-epoch metrics, artifacts, the "
                          "model); null = off; {} = on with the defaults; `--mlflow URI` turns "
                          "it on")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-' (got {v!r})")
        return v


class Experiment(_Strict):
    task: Task | None = Field(
        None, description="classification or regression (default: classification; a "
                          "non-integer target then asks for task: regression)")
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    loss: LossConfig = Field(default_factory=lambda: LossConfig())
    regularization: RegularizationConfig = Field(default_factory=lambda: RegularizationConfig())
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig())
    scheduler: SchedulerConfig = Field(default_factory=lambda: SchedulerConfig())
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig())
    output: OutputConfig = Field(default_factory=lambda: OutputConfig())
    # dotted field -> "auto: <reason>" for the fields the default rule filled in from the data
    # (engine/train/defaults.py); not a field: config.yaml records it as a comment
    _auto: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def auto(self) -> dict[str, str]:
        """The fields resolved from the data by the default rule, with their reasons."""
        return dict(self._auto)

    def with_auto(self, reasons: dict[str, str]) -> Experiment:
        """A copy recording `reasons` (more fields resolved by the default rule)."""
        new = self.model_copy()
        new._auto = {**self._auto, **reasons}
        return new

    @property
    def name(self) -> str:
        return self.output.name or "experiment"

    @property
    def resolved_task(self) -> Task:
        """The task: as set, else regression for a bundled regression set, else classification."""
        if self.task is not None:
            return self.task
        return "regression" if self.data.dataset in REGRESSION_DATASETS else "classification"

    @property
    def loss_name(self) -> LossName:
        """The loss: as set, else cross_entropy (classification) or mse (regression)."""
        if self.loss.name is not None:
            return self.loss.name
        return "mse" if self.resolved_task == "regression" else "cross_entropy"

    @model_validator(mode="after")
    def _task_fits(self) -> Experiment:
        task, problems = self.resolved_task, []
        if task == "regression":
            if self.loss.name == "cross_entropy":
                problems.append("loss.name: cross_entropy is for classification; use mse, "
                                "huber or l1 with task: regression")
            if self.loss.class_weights != "none":
                problems.append("loss.class_weights: applies to classification only")
            wrong = CLASSIFICATION_METRICS
        else:
            if self.loss.name not in (None, "cross_entropy"):
                problems.append(f"loss.name: {self.loss.name} is a regression loss; set "
                                f"task: regression")
            if isinstance(self.data.target, list):
                problems.append("data.target: a list of targets needs task: regression")
            wrong = REGRESSION_METRICS
        if self.model.ensemble_size > 1 and self.training.seeds > 1:
            problems.append(f"model.ensemble: {self.model.ensemble_size} members cannot be "
                            f"combined "
                            f"with training.seeds: {self.training.seeds}; train the ensemble "
                            "once per seed instead (--set training.seed=S)")
        for where, m in (("training.early_stopping.monitor", self.training.early_stopping.monitor),
                         ("scheduler.monitor", self.scheduler.monitor)):
            if m in wrong:
                problems.append(f"{where}: {m} does not apply to task: {task}")
        if problems:  # one line each; validate_experiment places each at its key's line
            raise ValueError("\n".join(problems))
        return self


def _section_of(ann: Any) -> tuple[type[BaseModel], str] | None:
    """A field that takes a section as one of its forms, with its type as a user writes it:
    `Section | None` -> (Section, "mapping or null"); `int | Section` -> (Section,
    "int or mapping")."""
    args = get_args(ann)
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models) != 1:
        return None
    others = [a for a in args if a is not models[0]]
    names = {type(None): "null", int: "int"}
    if not all(a in names for a in others):
        return None
    return models[0], " or ".join(["mapping", *(names[a] for a in others)][::-1]
                                  if int in others else ["mapping", "null"])


def describe_schema() -> list[tuple[str, str, str, str]]:
    """Every field as (dotted path, type, default, description), type and default as a
    user writes them (`typetext`): ``int ≥ 1``, ``one of: sgd, adam``, ``null``."""
    from fcnet_cli.config.typetext import type_text, value_text

    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            ann = f.annotation
            path = f"{prefix}{name}"
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, path + ".")
                continue
            default = f.get_default(call_default_factory=True)
            section = _section_of(ann)
            if section is not None:  # output.mlflow: null (off) or a mapping; model.ensemble
                rows.append((path, section[1], value_text(default), f.description or ""))
                walk(section[0], path + ".")
                continue
            rows.append((path, type_text(f), value_text(default), f.description or ""))

    walk(Experiment, "")
    return rows

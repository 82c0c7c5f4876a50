"""The experiment config: schema, files (`extends:`, `--set`), validation. No torch.

    schema.py    the pydantic models and the names of every choice
    source.py    a raw mapping and where each value was written; `extends:` and `--set`
    problems.py  one-line problem messages placed at FILE:LINE
    load.py      file -> validated Experiment, and views of it (dump, layout key, flatten)
"""

from fcnet_cli.config.load import (
    check,
    dump_experiment,
    explain,
    flatten,
    layout_key,
    load_experiment,
    load_source,
    validate,
    validate_experiment,
    with_values,
)
from fcnet_cli.config.problems import Loc, Problem, did_you_mean, locate, problems_from
from fcnet_cli.config.schema import (
    FILE_DATASETS,
    METRICS,
    NORMALIZATIONS,
    SPLITS,
    DataConfig,
    EarlyStoppingConfig,
    EngineName,
    Experiment,
    LossConfig,
    ModelConfig,
    Monitor,
    OptimizerConfig,
    OutputConfig,
    RegularizationConfig,
    SchedulerConfig,
    Split,
    TrainingConfig,
    describe_schema,
)
from fcnet_cli.config.source import Source, read_source, source_from_mapping, with_overrides
from fcnet_cli.errors import ConfigError
from fcnet_cli.yamlio import apply_overrides, load_yaml, parse_override, read_config_file

__all__ = [
    "FILE_DATASETS",
    "METRICS",
    "NORMALIZATIONS",
    "SPLITS",
    "ConfigError",
    "DataConfig",
    "EarlyStoppingConfig",
    "EngineName",
    "Experiment",
    "Loc",
    "LossConfig",
    "ModelConfig",
    "Monitor",
    "OptimizerConfig",
    "OutputConfig",
    "Problem",
    "RegularizationConfig",
    "SchedulerConfig",
    "Source",
    "Split",
    "TrainingConfig",
    "apply_overrides",
    "check",
    "describe_schema",
    "did_you_mean",
    "dump_experiment",
    "explain",
    "flatten",
    "layout_key",
    "load_experiment",
    "locate",
    "load_source",
    "load_yaml",
    "parse_override",
    "problems_from",
    "read_config_file",
    "read_source",
    "source_from_mapping",
    "validate",
    "validate_experiment",
    "with_overrides",
    "with_values",
]

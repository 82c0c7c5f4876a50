"""The experiment config: schema, files (`extends:`, `--set`), validation. No torch.

    schema.py    the pydantic models and the names of every choice
    source.py    a raw mapping and where each value was written; `extends:` and `--set`
    problems.py  one-line problem messages placed at FILE:LINE
    load.py      file -> validated Experiment, and views of it (dump, layout key, flatten)
"""

from fcnet_cli.config import load, schema
from fcnet_cli.config.load import *  # noqa: F403
from fcnet_cli.config.problems import Loc, Problem, did_you_mean, locate, problems_from
from fcnet_cli.config.schema import *  # noqa: F403  (the schema's names are the config's)
from fcnet_cli.config.source import Source, read_source, source_from_mapping, with_overrides
from fcnet_cli.errors import ConfigError
from fcnet_cli.yamlio import apply_overrides, load_yaml, parse_override, read_config_file

__all__ = [
    *load.__all__,
    *schema.__all__,
    "ConfigError",
    "Loc",
    "Problem",
    "Source",
    "apply_overrides",
    "did_you_mean",
    "load_yaml",
    "locate",
    "parse_override",
    "problems_from",
    "read_config_file",
    "read_source",
    "source_from_mapping",
    "with_overrides",
]

"""Terminal rendering: the only package that imports rich (DESIGN.md). No torch here.

Every function takes a `Console`, so tests render to `Console(file=StringIO(), width=100)`.
User-provided text (messages, class names, paths) is wrapped in `Text`, never parsed as markup.
"""

from rich.console import Console

from fcnet_cli.display.base import (
    is_terminal,
    make_console,
    render_comparison,
    render_config,
    render_errors,
    render_importances,
)
from fcnet_cli.display.data import render_data_summary
from fcnet_cli.display.schema import render_schema
from fcnet_cli.display.seeds import render_group_summary, render_lr_find
from fcnet_cli.display.sweep import SweepDisplay, leaderboard_table, render_leaderboard
from fcnet_cli.display.train import (
    LiveTrainDisplay,
    PlainTrainDisplay,
    render_eval,
    render_run_summary,
)

__all__ = [
    "Console",
    "LiveTrainDisplay",
    "PlainTrainDisplay",
    "SweepDisplay",
    "is_terminal",
    "make_console",
    "render_comparison",
    "render_config",
    "render_data_summary",
    "render_errors",
    "render_importances",
    "render_leaderboard",
    "leaderboard_table",
    "render_eval",
    "render_group_summary",
    "render_lr_find",
    "render_run_summary",
    "render_schema",
]

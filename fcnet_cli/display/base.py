"""Consoles and the small renderers every command uses: schema, config, errors, tables."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from fcnet_cli.display.fit import Col, fit_table

_PIPE_WIDTH = 120  # columns used for wide tables when output is not a terminal
_FINAL_ROWS = 200  # most epoch rows left on screen when a live run ends (metrics.csv has all)


def make_console(*, stderr: bool = False) -> Console:
    """A console on the current sys.stdout/sys.stderr (created late, so CliRunner sees it)."""
    console = Console(stderr=stderr, highlight=False)
    if not is_terminal(console) and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH  # a pipe or file has no width to respect: room for tables
    return console


def is_terminal(console: Console) -> bool:
    return console.is_terminal and not console.is_dumb_terminal


def _num(x: float, spec: str = ".4f") -> str:
    return format(x, spec)


def _kv_grid(pairs: Iterable[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, Text(value))
    return grid


def render_config(console: Console, yaml_text: str) -> None:
    """A resolved config: highlighted on a terminal, verbatim (valid YAML) otherwise."""
    if is_terminal(console):
        console.print(Syntax(yaml_text.rstrip("\n"), "yaml", background_color="default"))
    else:
        console.print(Text(yaml_text.rstrip("\n")), soft_wrap=True)


def render_errors(console: Console, problems: Sequence[str]) -> None:
    """One line per problem, prefixed `error:`; the text itself is never parsed as markup."""
    for problem in problems:
        line = Text("error: ", style="bold red")
        line.append(str(problem).replace("\n", " "))
        console.print(line, soft_wrap=True)


def render_comparison(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]],
                      title: str | None = None, caption: str | None = None,
                      priorities: Sequence[int] | None = None) -> None:
    """A comparison of runs (`analysis.comparison.Comparison.cells()`): one row per run, already
    sorted.

    The first column (the run) folds; the numbers never do. `priorities` (0 = always shown,
    higher = left out first) decide which columns go when the console is too narrow.
    """
    prio = list(priorities) if priorities is not None else [0] * len(headers)
    cols = [Col(head, [r[i] for r in rows], priority=prio[i],
                justify="left" if i == 0 else "right", fold=i == 0)
            for i, head in enumerate(headers)]
    console.print(fit_table(cols, console.width, title=title, caption=caption))


def render_importances(console: Console, rows: Sequence[tuple[str, float]], source: str) -> None:
    """Optuna parameter importances (fractions summing to 1), largest first."""
    table = Table(title="parameter importances (fANOVA)", caption=Text(f"from {source}"),
                  header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("parameter", no_wrap=True)
    table.add_column("importance", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for name, value in rows:
        table.add_row(Text(name), f"{value:.3f}", "█" * max(0, round(value * 30)))
    console.print(table)

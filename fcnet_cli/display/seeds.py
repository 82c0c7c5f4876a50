"""A seed group's summary (`fcnet train --seeds N`) and the lr-find table. No torch here."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fcnet_cli.analysis.groups import GroupStats
from fcnet_cli.analysis.stats import CLIP_MARK
from fcnet_cli.display.base import _kv_grid

__all__ = ["render_group_summary", "render_lr_find"]


def render_group_summary(console: Console, stats: GroupStats, seconds: float | None = None
                         ) -> None:
    """Every final metric over the seeds, the monitored one first (marked ◀): mean ± std and
    the 95 % t-interval, cut to the metric's range and marked where it had to be."""
    n = len(stats.seeds)
    seeds = f"{stats.seeds[0]}–{stats.seeds[-1]}" if n > 1 else str(stats.seeds[0] if n else "")
    done = sum(1 for s in stats.statuses.values() if s in ("completed", "early_stopped"))
    pairs = [("group", stats.name), ("seeds", f"{seeds} ({n}, {done} finished)")]
    other = sorted({s for s in stats.statuses.values()} - {"completed", "early_stopped"})
    if other:
        pairs.append(("not finished", ", ".join(
            f"{k} {v}" for k, v in stats.statuses.items() if v in other)))
    if seconds is not None:
        pairs.append(("time", f"{seconds:.1f}s (all seeds, one population)"))
    console.print(_kv_grid(pairs))
    clipped = any(s.clipped for _, s in stats.rows)
    notes = ["◀ monitored: picks each seed's best epoch; val: at it; test: its checkpoint",
             "95% interval: Student's t over the seeds" + (
                 f"; {CLIP_MARK} cut to the metric's range" if clipped else "")]
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("metric", no_wrap=True)
    table.add_column("mean ± std", justify="right", no_wrap=True)
    table.add_column("95% interval", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for name, s in stats.rows:
        spec = ".3f" if name.startswith("gap") else ".4f"
        shown = f"{name} ◀" if name == stats.monitor else name
        table.add_row(Text(shown), s.text(spec), s.interval(spec) or "-", str(s.n))
    console.print(table)
    for note in notes:  # under the table, not a caption: as wide as the terminal allows
        console.print(Text(note))
    console.print(_kv_grid([("group directory", str(stats.group_dir))]))


def _loss(v: float) -> str:
    return "diverged" if v != v else f"{v:.4f}"  # NaN: the member diverged


def render_lr_find(console: Console, rows: Sequence[tuple[float, float, float]],
                   suggestion: float | None, ramp_suggestion: float | None, seeds: int) -> None:
    """The population scan (one row per lr, the suggestion marked) and both suggestions."""
    if rows:
        table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                      title="learning rates trained as one population")
        table.add_column("lr", justify="right", no_wrap=True)
        each = "" if seeds == 1 else f" (mean of {seeds})"
        table.add_column(f"train loss{each}", justify="right", no_wrap=True)
        table.add_column("val loss", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        for lr, train, val in rows:
            table.add_row(f"{lr:.3g}", _loss(train), _loss(val),
                          "◀ lowest val loss" if lr == suggestion else "")
        console.print(table)
    pairs = []
    if rows:
        pairs.append(("population", "-" if suggestion is None else f"lr {suggestion:.3g}"))
    if ramp_suggestion is not None:
        pairs.append(("ramp", f"lr {ramp_suggestion:.3g} (steepest descent of the loss)"))
    console.print(_kv_grid(pairs))

"""Tables that fit the terminal: columns dropped by priority, never a number cut short.

Rich squeezes a too-wide table by cutting cells (`+0.01…`, `epo…`). Here every numeric column
keeps its full width; when the table does not fit, the columns of lowest priority are left
out and the caption says which, and only a text column (a run name) may fold onto more lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich import box
from rich.table import Table
from rich.text import Text

__all__ = ["Col", "fit_table"]

FOLD_MIN = 12  # a folding text column is given at least this many characters


@dataclass
class Col:
    """One column: its header, its cells (one per row) and how readily it is dropped."""

    header: str
    cells: Sequence[str | Text] = field(default_factory=list)
    priority: int = 0  # 0 is never dropped; higher numbers are dropped first
    justify: Literal["left", "right", "center"] = "right"
    fold: bool = False  # text that may wrap onto several lines; numbers never do

    def widest_cell(self) -> int:
        return max((Text(c).cell_len if isinstance(c, str) else c.cell_len for c in self.cells),
                   default=0)

    def shown_header(self) -> str:
        """A dotted header wider than every cell breaks after its first dot:
        `regularization.` over `type` (the full name stays readable)."""
        head, dot, tail = self.header.partition(".")
        if dot and not self.fold and len(self.header) > self.widest_cell():
            return f"{head}.\n{tail}"
        return self.header

    def natural(self) -> int:
        """Characters the column needs: its widest cell or header line (folding: less)."""
        header = max(len(line) for line in self.shown_header().split("\n"))
        widest = max(header, self.widest_cell())
        return min(widest, max(FOLD_MIN, header)) if self.fold else widest


def _needed(cols: Sequence[Col]) -> int:
    # SIMPLE_HEAD without edges: one padding space each side of a column, none at the edges,
    # and a one-space vertical rule between columns.
    n = len(cols)
    return sum(c.natural() for c in cols) + 2 * n - 2 + max(0, n - 1)


def fit_table(cols: Sequence[Col], width: int, *, title: str | None = None,
              caption: str | None = None, end_section: Sequence[bool] = ()) -> Table:
    """A table of `cols` no wider than `width`, the least important columns left out first.

    The caption ends with `not shown at N columns: a, b` when columns were dropped.
    """
    kept = list(cols)
    dropped: list[Col] = []
    while _needed(kept) > width:
        candidates = [c for c in kept if c.priority > 0]
        if not candidates:
            break
        worst = max(candidates, key=lambda c: (c.priority, kept.index(c)))
        kept.remove(worst)
        dropped.append(worst)
    notes = [caption] if caption else []
    if dropped:
        shown = ", ".join(c.header for c in cols if c in dropped)
        notes.append(f"not shown at {width} columns: {shown}")
    table = Table(title=title, caption="; ".join(notes) or None, header_style="bold",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  caption_justify="left")
    for c in kept:
        if c.fold:
            table.add_column(Text(c.shown_header()), justify=c.justify, overflow="fold",
                             min_width=min(c.natural(), FOLD_MIN))
        else:
            table.add_column(Text(c.shown_header()), justify=c.justify, no_wrap=True,
                             min_width=c.natural())
    rows = max((len(c.cells) for c in cols), default=0)
    for i in range(rows):
        cells = [c.cells[i] if i < len(c.cells) else "" for c in kept]
        table.add_row(*(Text(v) if isinstance(v, str) else v for v in cells),
                      end_section=bool(end_section[i]) if i < len(end_section) else False)
    return table

"""Text wrapped at word boundaries to the console width, printed as it is.

Rich folds a too-long line wherever the width runs out, and a line printed with
``soft_wrap=True`` is left to the terminal, which cuts it mid-word. These helpers wrap first
(never inside a word, a number or a name; never inside a group of words given as one part,
such as ``(n = 86)``) and print each line without further wrapping, on a terminal or a pipe.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

__all__ = ["NBSP", "print_wrapped", "wrap_parts", "wrap_words"]

NBSP = "\u00a0"  # a space no line breaks at; printed as a plain space


def wrap_words(text: str, width: int, indent: str = "", first: str = "") -> list[str]:
    """`text` as lines of at most `width` characters, broken only at spaces (a word longer
    than a line keeps its own line; `NBSP` joins words that must stay on one line). `first`
    starts the first line, `indent` the others."""
    lines = textwrap.wrap(text, width=max(width, 20), initial_indent=first,
                          subsequent_indent=indent, break_long_words=False,
                          break_on_hyphens=False) or [first.rstrip()]
    return [line.replace(NBSP, " ") for line in lines]


def wrap_parts(parts: Sequence[str], width: int, sep: str = "  ", indent: str = "  "
               ) -> list[str]:
    """Parts joined by `sep`, a new line (starting with `indent`) wherever the next whole
    part would not fit; a part is never broken."""
    lines: list[str] = []
    line = ""
    for part in parts:
        if line and len(line) + len(sep) + len(part) > width:
            lines.append(line)
            line = indent + part
        else:
            line = f"{line}{sep}{part}" if line else part
    return lines + [line] if line else lines


def print_wrapped(console: Console, text: str | Sequence[str], style: str = "",
                  indent: str = "  ") -> None:
    """Print `text` (words) or a sequence of parts (`wrap_parts`) wrapped to the console."""
    lines = (wrap_words(text, console.width, indent) if isinstance(text, str)
             else wrap_parts(text, console.width, indent=indent))
    for line in lines:
        console.print(Text(line, style=style), soft_wrap=True)

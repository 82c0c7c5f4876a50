"""`fcnet validate --data`: the data summary, wrapped to the console."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from fcnet_cli.display.wrap import print_wrapped, wrap_words

__all__ = ["render_data_summary"]


def render_data_summary(console: Console, pairs: Sequence[tuple[str, str]],
                        notices: Sequence[str] = ()) -> None:
    """One `label  text` line per pair (text wrapped under itself), then the notices."""
    key = max((len(k) for k, _ in pairs), default=0) + 2
    for label, text in pairs:
        lines = wrap_words(text, console.width, indent=" " * key,
                           first=label.ljust(key))
        for line in lines:
            console.print(Text(line), soft_wrap=True)
    for note in notices:
        print_wrapped(console, note, style="yellow")
    console.print(Text("the data is ready to train"), soft_wrap=True)

"""`fcnet schema` and `validate --explain`: one block per field, wrapped to the console.

    optimizer.momentum  float in [0, 1)  (default 0.0)
        momentum factor ...

Each block is wrapped at word boundaries to the console's width (80 columns fit; a pipe
gets the whole text, never cut): a field name, a value, a number and a type such as
``float in [0, 1)`` are never split; a list of choices breaks only after its commas.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from fcnet_cli.display.wrap import NBSP, wrap_words

__all__ = ["render_schema"]

INDENT = "    "


def _whole(text: str) -> str:
    """`text` as one unbreakable piece (spaces become non-breaking while wrapping)."""
    return text.replace(" ", NBSP)


def _type(text: str) -> str:
    """A type: whole, except that a choice list may break after each comma."""
    if text.startswith("one of: "):
        return ", ".join(_whole(choice) for choice in text.split(", "))
    return _whole(text)


def _head(path: str, type_: str, default: str, value: str | None, source: str | None
          ) -> str:
    if value is None:
        return f"{path}  {_type(type_)}  {_whole(f'(default {default})')}"
    head = f"{path} = {_whole(value) if len(value) < 30 else value}"
    if source in (None, "", "default"):
        return f"{head}  (default)"
    if source.startswith("auto:"):  # the default rule's value and its reason
        return f"{head}  {source}"
    return f"{head}  {_whole(f'from {source}')}  {_whole(f'(default {default})')}"


def _mapping(path: str, values: dict[str, str], sources: dict[str, str]
             ) -> tuple[str, str] | None:
    """A field given as a mapping: its keys as the value ("{size, select, rounds}") and the
    first source its fields name; None when `path` has no fields below it."""
    below = [k for k in values if k.startswith(path + ".")]
    if not below:
        return None
    keys = ", ".join(k[len(path) + 1:] for k in below)
    given = [sources[k] for k in below if sources.get(k) not in (None, "", "default")]
    return "{" + keys + "}", given[0] if given else ""


def render_schema(console: Console, rows: Sequence[tuple[str, str, str, str]],
                  values: dict[str, str] | None = None,
                  sources: dict[str, str] | None = None) -> None:
    """The config schema, one block per field: its dotted path, type and default, then its
    description. `values` shows a config's value of each field instead of the type (which
    moves after the description), `sources` where each value came from."""
    width = console.width
    for path, type_, default, description in rows:
        value = None if values is None else values.get(path, "")
        source = None if sources is None else sources.get(path, "")
        if values is not None and not value:  # a mapping: its fields follow, one row each
            value, source = _mapping(path, values, sources or {}) or (value, source)
        head = wrap_words(_head(path, type_, default, value, source), width, INDENT)
        first = Text(head[0])
        first.stylize("bold", 0, len(path))
        if value is not None and value != default:
            first.stylize("bold", len(path) + 3, len(path) + 3 + len(value))
        console.print(first, soft_wrap=True)
        for line in head[1:]:
            console.print(Text(line), soft_wrap=True)
        about = description if value is None else (
            f"{description} ({_type(type_)})" if description else _type(type_))
        for line in wrap_words(about, width, INDENT, first=INDENT):
            console.print(Text(line), soft_wrap=True)

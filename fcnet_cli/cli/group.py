"""The click classes behind `fcnet`: readable help and usage errors in fcnet's own format.

Typer's plain help writes a required argument as `{checkpoint}` and appends a type label
(`<path>`, `<list[Path]>`, `<int range>`); click's usage errors print a `Usage:` block and an
`Error:` line. fcnet wants argument names in capitals (`CHECKPOINT`, `RUN_DIR...`), options
with a metavar, and every problem as one `error: ...` line with exit code 2, the same for every
command (DESIGN.md's exit code table, repeated at the end of each command's help).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup

__all__ = ["EXIT_CODE_HELP", "FcnetGroup", "usage_error_line"]

EXIT_CODE_HELP = ("Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, "
                  "3 training diverged, 130 interrupted (SIGINT), 143 terminated (SIGTERM).")

# click's base exception, found through a public typer class: typer vendors click in recent
# releases and depends on it in older ones.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _Argument(TyperArgument):
    """A positional argument shown by its metavar alone: `CHECKPOINT`, `RUN_DIR...`."""

    def _metavar(self) -> str:
        return (self.metavar or (self.name or "arg").upper()).removesuffix("...")

    def display_type_rich(self, ctx: Any) -> str | None:
        return ""

    def get_error_hint(self, ctx: Any = None) -> str:
        return f"'{self._rich_display_name()}'"

    def _rich_display_name(self) -> str:
        return self._metavar() + ("..." if self.nargs != 1 else "")

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"

    def make_metavar(self, ctx: Any = None) -> str:
        return self._rich_display_name()


def _readable(command: Any) -> None:
    """Turn the typer arguments of a command into `_Argument`s; add the exit code table."""
    for param in getattr(command, "params", []):
        if type(param) is TyperArgument:
            param.__class__ = _Argument
    if getattr(command, "epilog", None) is None:
        command.epilog = EXIT_CODE_HELP


def usage_error_line(err: Exception) -> str:
    """A click usage error as one line: `error: fcnet train: no such option: --bogus (...)`."""
    message = str(getattr(err, "format_message", lambda: str(err))()).strip()
    message = " ".join(message.split())
    ctx = getattr(err, "ctx", None)
    where = ctx.command_path if ctx is not None else "fcnet"
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    return f"error: {where}: {message.rstrip('.')} (see {where} --help)"


class FcnetGroup(TyperGroup):
    """The `fcnet` group: readable help for every command, click errors as `error:` lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            _readable(command)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, windows_expand_args=windows_expand_args,
                                **extra)
        except _CLICK_ERROR as err:
            if not standalone_mode:
                raise
            if type(err).__name__ == "NoArgsIsHelpError":  # `fcnet` alone: the help, exit 2
                err.show()  # type: ignore[attr-defined]
                sys.exit(2)
            typer.echo(usage_error_line(err), err=True)
            sys.exit(2)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

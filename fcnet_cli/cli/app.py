"""The typer application, shared options, and errors turned into exit codes in one place."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from fcnet_cli.cli.group import FcnetGroup
from fcnet_cli.errors import ConfigError, FcnetError

__all__ = ["EXIT_CODES", "EXIT_SIGNAL", "AllowChangedOpt", "JsonOpt", "ThreadsOpt", "app"]

# DESIGN.md: 0 success, 1 runtime failure, 2 usage/config error, 3 diverged,
# 130 interrupted (SIGINT), 143 terminated (SIGTERM).
EXIT_CODES = {"completed": 0, "early_stopped": 0, "diverged": 3}
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
_DEBUG = "fcnet.debug"

app = typer.Typer(
    name="fcnet",
    cls=FcnetGroup,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: paragraphs rewrapped, no markup in docstrings
    context_settings={"help_option_names": ["-h", "--help"]},
)


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
ConfigArg = Annotated[Path, typer.Argument(help="Experiment YAML file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", show_default=False,
                 help="Override one field, e.g. --set optimizer.lr=0.1 (repeatable)."),
]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, metavar="N", show_default=False,
    help="CPU threads for torch (training.threads; default: the cores available to this "
         "process).")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print the result as JSON on stdout (nothing else there).")]
AllowChangedOpt = Annotated[bool, typer.Option(
    "--allow-changed-data",
    help="Rebuild the split even if the training data file changed since the run "
         "(a warning instead of an error).")]


def _print_version(value: bool) -> None:
    """`fcnet --version`: the package, torch and the device `training.device: auto` picks."""
    if not value:
        return
    import torch  # only here: `--help` must not pay for it

    from fcnet_cli.engine.store.records import versions
    from fcnet_cli.engine.train.device import pick_device

    v = versions()
    device = pick_device("auto")
    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    typer.echo(f"fcnet {v['fcnet']}\ntorch {v['torch']}\npython {v['python']}\n"
               f"device {device.type}{name}")
    raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: DebugOpt = False,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Show the versions of fcnet, torch and Python and the training device.")] = False,
) -> None:
    """Train, evaluate and inspect fully connected networks described by YAML experiments.

    Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,
    3 training diverged, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    """
    ctx.meta[_DEBUG] = debug


# ---------------------------------------------------------------- error handling


def _guarded(body: Callable[[], int], *, debug: bool) -> int:
    """Run a command body; map errors to (message lines on stderr, exit code)."""
    try:
        return body()
    except FcnetError as err:
        if debug:
            raise
        problems = err.problems if isinstance(err, ConfigError) else str(err).splitlines()
        _print_errors(problems or [type(err).__name__])
        return err.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        _print_errors(["interrupted"])
        return EXIT_SIGNAL["SIGINT"]
    except Exception as err:  # the one place unexpected errors become exit 1
        if debug:
            raise
        message = str(err).strip() or type(err).__name__
        _print_errors([f"{message} (run with --debug to see the traceback)"])
        return 1


def _print_errors(problems: Sequence[str]) -> None:
    from fcnet_cli import display

    display.render_errors(display.make_console(stderr=True), problems)


def _run(ctx: typer.Context, *, debug: bool, body: Callable[[], int]) -> None:
    code = _guarded(body, debug=debug or bool(ctx.meta.get(_DEBUG)))
    raise typer.Exit(code)

"""`fcnet train` and `fcnet eval`."""

import json
import os
import shlex
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fcnet_cli.errors import CheckpointError, UsageError

if TYPE_CHECKING:
    from fcnet_cli.display import Console
    from fcnet_cli.events import Callback, RunResult, StopToken

from fcnet_cli.cli.app import EXIT_CODES, EXIT_SIGNAL, DebugOpt, SetOpt, Split, _run, app

# ---------------------------------------------------------------- train


@app.command()
def train(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Argument(
        help="Experiment YAML file (optional with --resume).", show_default=False)] = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the run directory.")] = False,
    resume: Annotated[Path | None, typer.Option(
        metavar="RUN_DIR", show_default=False,
        help="Continue an interrupted run (or seed group) from its last checkpoint.")] = None,
    seeds: Annotated[int | None, typer.Option(
        metavar="N", show_default=False,
        help="Train seeds seed..seed+N-1 as one population (sets training.seeds): a group "
             "folder with mean ± std and a 95% interval of every metric.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Train the network an experiment describes and save a run directory.

    Shows a live epoch table on a terminal and one line per epoch otherwise. Ctrl-C (or
    SIGTERM) stops after the current batch, saves the run and prints how to resume it.
    """
    _run(ctx, debug, lambda: _train(config, set_ or [], quiet, resume, seeds))


def _train(config: Path | None, overrides: list[str], quiet: bool, resume: Path | None,
           seeds: int | None = None) -> int:
    from fcnet_cli import display
    from fcnet_cli.config import load_experiment
    from fcnet_cli.events import StopToken

    group = _check_seeds(seeds, resume)
    if seeds is not None:
        overrides = [*overrides, f"training.seeds={seeds}"]
    exp = load_experiment(_config_path(config, resume), overrides)
    if group or exp.training.seeds > 1:
        from fcnet_cli.cli.seeds import train_seeds

        out = display.make_console()
        return train_seeds(exp, quiet, resume, out, _train_callbacks(out, quiet), _signals_to)
    from fcnet_cli.engine.train import train as run_training  # torch: only for a valid config

    out = display.make_console()
    stop = StopToken()
    callbacks = _train_callbacks(out, quiet)
    if exp.output.tensorboard:
        from fcnet_cli.engine.tensorboard import TensorBoardLogger

        callbacks.append(TensorBoardLogger())
    try:
        with _signals_to(stop):
            result = run_training(exp, callbacks=callbacks, stop=stop, resume=resume)
    finally:
        for cb in callbacks:
            close = getattr(cb, "close", None)
            if close is not None:
                close()
    return _report_run(out, result, stop, quiet)


def _check_seeds(seeds: int | None, resume: Path | None) -> bool:
    """Validate --seeds against --resume; True when `resume` is a seed group folder."""
    from fcnet_cli.config import MAX_SEEDS

    if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds must be between 1 and {MAX_SEEDS} (got {seeds})")
    if resume is None:
        return False
    if not resume.is_dir():
        raise UsageError(f"{resume}: no such run directory")
    group = (resume / "group.json").is_file()
    if not group and seeds is not None and seeds > 1:
        raise UsageError(f"cannot resume {resume} with --seeds {seeds}: it is a single run, "
                         "not a seed group (resume it without --seeds)")
    return group


def _config_path(config: Path | None, resume: Path | None) -> Path:
    if config is not None:
        return config
    if resume is None:
        raise UsageError("give an experiment file (fcnet train CONFIG) or --resume RUN_DIR")
    return resume / "config.yaml"  # a seed group keeps its own config.yaml too


def _train_callbacks(out: "Console", quiet: bool) -> "list[Callback]":
    from fcnet_cli import display

    if quiet:
        return []
    if display.is_terminal(out):
        return [display.LiveTrainDisplay(out)]
    return [display.PlainTrainDisplay(out)]


def _report_run(out: "Console", result: "RunResult", stop: "StopToken", quiet: bool) -> int:
    from fcnet_cli import display

    if quiet:
        typer.echo(result.run_dir or "")
    else:
        display.render_run_summary(out, result)
    if result.status == "interrupted":
        reason = stop.reason or "SIGINT"
        if result.run_dir:
            typer.echo(f"interrupted ({reason}); resume with: "
                       f"fcnet train --resume {shlex.quote(result.run_dir)}", err=True)
        return EXIT_SIGNAL.get(reason, EXIT_SIGNAL["SIGINT"])
    return EXIT_CODES.get(result.status, 1)


@contextmanager
def _signals_to(stop: "StopToken") -> Iterator[None]:
    """Route SIGINT/SIGTERM to `stop` while training; restore the old handlers afterwards.

    The handler stays installed after the first signal: a second one must not kill the
    process while it saves the checkpoint, so it is only acknowledged.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            _note(f"{name}: already stopping, still saving the run (please wait)")
            return
        stop.request(name)
        _note(f"{name}: stopping after the current batch and saving the run")

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handle)
            except ValueError:  # not the main thread: leave signal handling alone
                break
        yield
    finally:
        for installed, old in previous.items():
            signal.signal(installed, old)


def _note(text: str) -> None:
    # Called from a signal handler: a raw write cannot re-enter a half-written Python stream.
    try:
        os.write(2, f"\nfcnet: {text}\n".encode())
    except OSError:
        pass


# ---------------------------------------------------------------- eval


@app.command("eval")
def eval_(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(
        help="Checkpoint directory, e.g. runs/NAME/RUN/checkpoints/best.", show_default=False)],
    split: Annotated[Split, typer.Option(help="Data split to evaluate on.")] = Split.test,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the metrics as JSON instead of tables.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a saved checkpoint: loss, accuracy, per-class metrics, confusion matrix."""
    _run(ctx, debug, lambda: _eval(checkpoint, split.value, as_json))


def _eval(checkpoint: Path, split: str, as_json: bool) -> int:
    if not checkpoint.exists():
        raise CheckpointError(f"{checkpoint}: no such file or directory")
    from fcnet_cli.engine.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, split)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from fcnet_cli import display

        display.render_eval(display.make_console(), result)
    return 0

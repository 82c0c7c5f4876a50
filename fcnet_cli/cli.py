"""The `fcnet` command line: the only module that imports typer (DESIGN.md).

Each command parses its arguments, calls the engine, renders through `display.py` and turns the
outcome into an exit code; errors become exit codes in one place (`_guarded`). The engine and
rich are imported inside the commands, so `fcnet --help`, `validate` and `schema` never load
torch.
"""

import json
import os
import shlex
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fcnet_cli.errors import CheckpointError, ConfigError, FcnetError, UsageError

if TYPE_CHECKING:
    from fcnet_cli.display import Console
    from fcnet_cli.results import Callback, RunResult, StopToken

__all__ = ["EXIT_CODES", "app", "main"]

# DESIGN.md: 0 success, 1 runtime failure, 2 usage/config error, 3 diverged,
# 130 interrupted (SIGINT), 143 terminated (SIGTERM).
EXIT_CODES = {"completed": 0, "early_stopped": 0, "diverged": 3}
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
_DEBUG = "fcnet.debug"

app = typer.Typer(
    name="fcnet",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: paragraphs rewrapped, no markup in docstrings
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Split(str, Enum):
    test = "test"
    val = "val"
    train = "train"


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
ConfigArg = Annotated[Path, typer.Argument(help="Experiment YAML file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", show_default=False,
                 help="Override one field, e.g. --set optimizer.lr=0.1 (repeatable)."),
]


@app.callback()
def _root(ctx: typer.Context, debug: DebugOpt = False) -> None:
    """Train, evaluate and inspect fully connected networks described by YAML experiments.

    Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,
    3 training diverged, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    """
    ctx.meta[_DEBUG] = debug


# ---------------------------------------------------------------- error handling


def _guarded(body: Callable[[], int], debug: bool) -> int:
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


def _run(ctx: typer.Context, debug: bool, body: Callable[[], int]) -> None:
    code = _guarded(body, debug or bool(ctx.meta.get(_DEBUG)))
    raise typer.Exit(code)


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
        help="Continue an interrupted run from its last checkpoint.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Train the network an experiment describes and save a run directory.

    Shows a live epoch table on a terminal and one line per epoch otherwise. Ctrl-C (or
    SIGTERM) stops after the current batch, saves the run and prints how to resume it.
    """
    _run(ctx, debug, lambda: _train(config, set_ or [], quiet, resume))


def _train(config: Path | None, overrides: list[str], quiet: bool, resume: Path | None) -> int:
    from fcnet_cli import display
    from fcnet_cli.config import load_experiment
    from fcnet_cli.results import StopToken

    exp = load_experiment(_config_path(config, resume), overrides)
    from fcnet_cli.train import train as run_training  # torch: only for a valid config

    out = display.make_console()
    stop = StopToken()
    callbacks = _train_callbacks(out, quiet)
    if exp.output.tensorboard:
        from fcnet_cli.tensorboard import TensorBoardLogger

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


def _config_path(config: Path | None, resume: Path | None) -> Path:
    if resume is not None and not resume.is_dir():
        raise UsageError(f"{resume}: no such run directory")
    if config is not None:
        return config
    if resume is None:
        raise UsageError("give an experiment file (fcnet train CONFIG) or --resume RUN_DIR")
    return resume / "config.yaml"


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
    from fcnet_cli.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, split)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from fcnet_cli import display

        display.render_eval(display.make_console(), result)
    return 0


# ---------------------------------------------------------------- validate / schema


@app.command()
def validate(
    ctx: typer.Context,
    config: ConfigArg,
    set_: SetOpt = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show every field with its value, default and meaning.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Check an experiment file and print the resolved config that train would run.

    Each problem is reported on its own line as FILE:LINE: FIELD: PROBLEM (exit code 2).
    """
    _run(ctx, debug, lambda: _validate(config, set_ or [], explain))


def _validate(config: Path, overrides: list[str], explain: bool) -> int:
    from fcnet_cli import display
    from fcnet_cli.config import describe_schema, dump_experiment, load_experiment

    exp = load_experiment(config, overrides)
    out = display.make_console()
    if explain:
        values = _flatten(exp.model_dump())
        display.render_schema(out, describe_schema(), values)
    else:
        display.render_config(out, dump_experiment(exp))
    return 0


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}, values shown like describe_schema's defaults."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = "null" if value is None else repr(value)
    return out


@app.command()
def schema(ctx: typer.Context, debug: DebugOpt = False) -> None:
    """List every experiment field with its type, default and description."""
    _run(ctx, debug, _schema)


def _schema() -> int:
    from fcnet_cli import display
    from fcnet_cli.config import describe_schema

    display.render_schema(display.make_console(), describe_schema())
    return 0


# ---------------------------------------------------------------- compare / plot


class ReportMetric(str, Enum):
    val_accuracy = "val_accuracy"
    val_loss = "val_loss"


RunsArg = Annotated[list[Path], typer.Argument(
    metavar="RUN_DIR_OR_SWEEP_DIR...", show_default=False,
    help="Run directories, or folders searched for them (any folder with summary.json and "
         "config.yaml), e.g. a sweep directory.")]
MetricOpt = Annotated[ReportMetric, typer.Option(
    "--metric", help="Validation metric to rank and plot by (at each run's best epoch).")]


@app.command()
def compare(
    ctx: typer.Context,
    paths: RunsArg,
    csv: Annotated[Path | None, typer.Option(
        "--csv", metavar="FILE", show_default=False, help="Also write the table as CSV.")] = None,
    markdown: Annotated[Path | None, typer.Option(
        "--markdown", metavar="FILE", show_default=False,
        help="Also write the table as Markdown.")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="FILE.png", show_default=False,
        help="Overlay the validation curves (training dashed) of all runs.")] = None,
    metric: MetricOpt = ReportMetric.val_accuracy,
    debug: DebugOpt = False,
) -> None:
    """Compare runs in one table, best first.

    One row per run: the hyperparameters that differ between the runs, the best validation
    metric, the test metric of the best checkpoint, the best and last epoch, the train/val gap
    at the best epoch, the fraction of weights with |w| < 1e-3, the total weight L2 norm and
    the seconds it took. Given one sweep directory, also prints Optuna's parameter importances.
    """
    _run(ctx, debug, lambda: _compare(paths, csv, markdown, plot, metric.value))


def _check_png(path: Path | None) -> None:
    if path is not None and path.suffix.lower() != ".png":
        raise UsageError(f"{path}: the figure is written as PNG; give a name ending in .png")


def _compare(paths: list[Path], csv: Path | None, markdown: Path | None, plot: Path | None,
             metric: str) -> int:
    from fcnet_cli import display, report

    _check_png(plot)
    runs = report.load_runs(paths)
    table = report.compare(runs, metric)
    out = display.make_console()
    display.render_comparison(out, table.headers(), table.cells(),
                              caption=table.caption())
    if len(paths) == 1 and not report.is_run_dir(paths[0]) and len(runs) > 2:
        from fcnet_cli.importances import param_importances

        found = param_importances(paths[0], runs, metric)
        if found is not None:
            display.render_importances(out, found.rows, found.source)
    for path, write in ((csv, table.write_csv), (markdown, table.write_markdown)):
        if path is not None:
            write(path)
            typer.echo(f"wrote {path}", err=True)
    if plot is not None:
        from fcnet_cli.plots import plot_overlay

        typer.echo(f"wrote {plot_overlay(runs, plot, metric)}", err=True)
    return 0


@app.command()
def plot(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        metavar="RUN_DIR", show_default=False,
        help="A run directory, or a sweep directory (any folder of run directories).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE.png", show_default=False,
        help="Where to write the figure (default: curves.png in a run directory, "
             "sweep.png in a sweep directory).")] = None,
    metric: MetricOpt = ReportMetric.val_accuracy,
    debug: DebugOpt = False,
) -> None:
    """Draw a run's learning curves in one PNG figure.

    Loss and accuracy (training dashed, validation solid), the learning rate and the
    generalization gap, per epoch. For a sweep directory: the best validation metric of
    every run against each swept parameter.
    """
    _run(ctx, debug, lambda: _plot(path, output, metric.value))


def _plot(path: Path, output: Path | None, metric: str) -> int:
    from fcnet_cli import plots, report

    _check_png(output)
    if report.is_run_dir(path):
        written = plots.plot_run(report.load_runs([path])[0], output or path / "curves.png")
    else:
        runs = report.load_runs([path])
        params = report.swept_params(path, runs)
        written = plots.plot_sweep(runs, params, output or path / "sweep.png", metric)
    typer.echo(str(written))
    return 0


# ---------------------------------------------------------------- sweep


@app.command()
def sweep(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Sweep YAML file.", show_default=False)],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", "-s", metavar="KEY=VALUE", show_default=False,
        help="Override a sweep key (--set seeds=1) or a base experiment field "
             "(--set base.training.epochs=5); repeatable.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Local worker processes sharing the sweep's study.")] = 1,
    storage: Annotated[str | None, typer.Option(
        metavar="URL", show_default=False,
        help="Shared study database for workers on many machines, e.g. "
             "postgresql://user:password@host/db (default: a journal file in the sweep "
             "folder).")] = None,
    top: Annotated[int, typer.Option(min=0, help="Leaderboard rows to show (0 = all).")] = 10,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the leaderboard as JSON instead of tables.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the sweep directory.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Run (or resume) a hyperparameter sweep on Optuna; trials that share a layout are
    trained together as one population.

    Writes runs/NAME/: the study, sweep.yaml, leaderboard.csv and one run directory per trial
    and seed under trials/ (fcnet eval works on their checkpoints). Running the same command
    again resumes the sweep. Ctrl-C stops after the current batch; unfinished trials are
    re-run next time.
    """
    _run(ctx, debug, lambda: _sweep(config, set_ or [], workers, storage, top, as_json, quiet))


def _sweep(config: Path, overrides: list[str], workers: int, storage: str | None, top: int,
           as_json: bool, quiet: bool) -> int:
    from fcnet_cli import display
    from fcnet_cli.results import StopToken
    from fcnet_cli.sweepspec import load_sweep

    spec = load_sweep(config, overrides)  # exit 2 here, before torch is imported
    from fcnet_cli.sweepstore import open_store

    open_store(spec, storage)  # an unreachable storage or a changed spec fails before torch
    from fcnet_cli.sweep import run_sweep

    out = display.make_console()
    for note in spec.notes:
        typer.echo(f"note: {note}", err=True)
    stop = StopToken()
    live = None if quiet or as_json else display.SweepDisplay(out, top=min(top or 5, 5))
    try:
        with _signals_to(stop):
            result = run_sweep(spec, storage=storage, workers=workers,
                               callbacks=[live] if live else [], stop=stop)
    finally:
        if live is not None:
            live.close()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif quiet:
        typer.echo(result.sweep_dir)
    else:
        display.render_leaderboard(out, result, top)
    if stop.requested:
        typer.echo(f"interrupted ({stop.reason}); resume with: fcnet sweep "
                   f"{shlex.quote(str(config))} (same options)", err=True)
        return EXIT_SIGNAL.get(stop.reason or "SIGINT", EXIT_SIGNAL["SIGINT"])
    if result.total and result.counts.get("failed", 0) >= result.total:
        typer.echo("error: every configuration failed", err=True)
        return 1
    return 0


def main() -> None:
    """Console-script entry point (`fcnet`)."""
    app(prog_name="fcnet")


if __name__ == "__main__":
    main()

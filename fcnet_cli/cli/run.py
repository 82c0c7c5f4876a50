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

from fcnet_cli.errors import Interrupted, UsageError

if TYPE_CHECKING:
    from fcnet_cli.display import Console
    from fcnet_cli.events import Callback, EvalResult, RunResult, StopToken

from fcnet_cli.cli.app import (
    EXIT_CODES,
    EXIT_SIGNAL,
    AllowChangedOpt,
    DebugOpt,
    JsonOpt,
    SetOpt,
    ThreadsOpt,
    _run,
    app,
)
from fcnet_cli.cli.pipes import StdoutGuard, stdout_may_close
from fcnet_cli.cli.tracking import MlflowOpt, mlflow_logger, report_tracking
from fcnet_cli.config.schema import Split
from fcnet_cli.engine.store.layout import RunDir

ThresholdOpt = Annotated[float | None, typer.Option(
    "--threshold", metavar="T", show_default=False,
    help="Binary classifiers: predict the positive (second) class when its probability is "
         "at least T, 0 < T < 1 (default: the more probable class).")]
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
        help="Continue an interrupted run from its last checkpoint "
             "(runs/NAME/latest is the newest run of NAME).")] = None,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
    seeds: Annotated[int | None, typer.Option(
        metavar="N", show_default=False,
        help="Train seeds seed..seed+N-1 as one population (sets training.seeds): a group "
             "folder with mean ± std and a 95% interval of every metric.")] = None,
    mlflow: MlflowOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train the network an experiment describes and save a run directory.

    Shows a live epoch table on a terminal and one line per epoch otherwise. Ctrl-C (or
    SIGTERM) stops after the current batch, saves the run and prints how to resume it.
    Wherever a run directory is expected, runs/NAME/latest stands for the newest run of the
    experiment NAME. --json prints the
    summary (run directory, best checkpoint, best epoch, validation and test metrics, status).
    """
    overrides = [*(set_ or []), *([f"training.threads={threads}"] if threads else [])]
    _run(ctx, debug=debug, body=lambda: _train(config, overrides, quiet=quiet or as_json,
                                               resume=resume, as_json=as_json, seeds=seeds,
                                               mlflow=mlflow))


def _train(config: Path | None, overrides: list[str], *, quiet: bool, resume: Path | None,
           as_json: bool = False, seeds: int | None = None, mlflow: str | None = None) -> int:
    from fcnet_cli import display
    from fcnet_cli.config import load_experiment
    from fcnet_cli.events import StopToken

    resume = None if resume is None else _real(resume, any_status=True)
    group = _check_seeds(seeds, resume)
    if seeds is not None:
        overrides = [*overrides, f"training.seeds={seeds}"]
    exp = load_experiment(_config_path(config, resume), overrides)
    tracker = mlflow_logger(exp, mlflow, seeds=group or exp.training.seeds > 1)
    if group or exp.training.seeds > 1:
        from fcnet_cli.cli.seeds import train_seeds

        out = display.make_console()
        return train_seeds(exp, quiet=quiet, resume=resume, out=out,
                           shown=_train_callbacks(out, quiet=quiet), signals_to=_signals_to,
                           tracker=tracker)
    from fcnet_cli.cli.seeds import SeedLabels
    from fcnet_cli.engine.train.loop import train as run_training  # torch: only for a valid config

    out = display.make_console()
    stop = StopToken()
    # an ensemble's members by their seeds ("seed 3"), also when the default rule decides it
    callbacks: list[Callback] = [SeedLabels(cb) for cb in _train_callbacks(out, quiet=quiet)]
    callbacks += [tracker] if tracker else []
    try:
        with _signals_to(stop, abort_before_data=True):
            result = run_training(exp, callbacks=callbacks, stop=stop, resume=resume)
    finally:
        for cb in callbacks:
            cb.close()
    code = _report_run(out, result, stop, quiet=quiet, as_json=as_json,
                       resumable=exp.model.ensemble_kind != "shared")
    if tracker is not None:
        report_tracking(tracker.tracking, quiet=quiet, ids=tracker.run_ids, folder=result.run_dir)
    return code


def _check_seeds(seeds: int | None, resume: Path | None) -> bool:
    """Validate --seeds against --resume; True when `resume` is a seed group folder."""
    from fcnet_cli.config import MAX_SEEDS

    if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds must be between 1 and {MAX_SEEDS} (got {seeds})")
    if resume is None:
        return False
    if not resume.is_dir():
        raise UsageError(f"{resume}: no such run directory")
    group = RunDir(resume).is_group()
    if not group and seeds is not None and seeds > 1:
        raise UsageError(f"cannot resume {resume} with --seeds {seeds}: it is a single run, "
                         "not a seed group (resume it without --seeds)")
    return group


def _config_path(config: Path | None, resume: Path | None) -> Path:
    if config is not None:
        return config
    if resume is None:
        raise UsageError("give an experiment file (fcnet train CONFIG) or --resume RUN_DIR")
    return RunDir(resume).config  # a seed group keeps its own config.yaml too


def _train_callbacks(out: "Console", *, quiet: bool) -> "list[Callback]":
    from fcnet_cli import display

    if quiet:
        return []
    if display.is_terminal(out):
        return [StdoutGuard(display.LiveTrainDisplay(out))]
    return [StdoutGuard(display.PlainTrainDisplay(out))]


def _real(path: Path, *, any_status: bool = False) -> Path:
    """runs/NAME/latest -> runs/NAME/<newest run id> (failed ones too with `any_status`)."""
    from fcnet_cli.engine.store.files import resolve_latest

    return resolve_latest(path, any_status=any_status)


def run_summary(result: "RunResult") -> dict[str, Any]:
    """What `train --json` prints: summary.json as written, plus the best checkpoint's path."""
    from fcnet_cli.engine.store.records import summary

    data: dict[str, Any] = summary(result)
    if result.run_dir:
        on_disk = RunDir(result.run_dir).summary
        if on_disk.is_file():
            data = json.loads(on_disk.read_text(encoding="utf-8"))
        best = RunDir(result.run_dir).checkpoint(RunDir.BEST)
        data["checkpoint"] = str(best) if best.is_dir() else None
    return data


def _report_run(out: "Console", result: "RunResult", stop: "StopToken", *, quiet: bool,
                as_json: bool = False, resumable: bool = True) -> int:
    from fcnet_cli import display

    with stdout_may_close():  # `fcnet train … | head -1`: the run is saved all the same
        if as_json:
            typer.echo(json.dumps(run_summary(result), indent=2))
        elif quiet:
            typer.echo(result.run_dir or "")
        else:
            display.render_run_summary(out, result)
    if result.status == "interrupted":
        reason = stop.reason or "SIGINT"
        if result.run_dir and not resumable:
            typer.echo(f"interrupted ({reason}); a shared ensemble does not resume: train it "
                       f"again with fcnet train "
                       f"{shlex.quote(str(RunDir(Path(result.run_dir)).config))}", err=True)
        elif result.run_dir:
            typer.echo(f"interrupted ({reason}); resume with: "
                       f"fcnet train --resume {shlex.quote(result.run_dir)}", err=True)
        return EXIT_SIGNAL.get(reason, EXIT_SIGNAL["SIGINT"])
    return EXIT_CODES.get(result.status, 1)


@contextmanager
def _signals_to(stop: "StopToken", *, abort_before_data: bool = False) -> Iterator[None]:
    """Route SIGINT/SIGTERM to `stop` while training; restore the old handlers afterwards.

    The handler stays installed after the first signal: a second one must not kill the
    process while it saves the checkpoint, so it is only acknowledged. With
    `abort_before_data`, a signal that comes while the data still loads (no run directory
    written yet: nothing to save) raises `Interrupted` at once instead (exit 130/143).
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if abort_before_data and not stop.data_ready and not stop.requested:
            stop.request(name)
            raise Interrupted(f"interrupted ({name}) while loading the data; no run was "
                              f"started", EXIT_SIGNAL[name])
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
        if abort_before_data and previous:
            from fcnet_cli.cli.loading import stop_while_loading

            with stop_while_loading(stop):
                yield
        else:
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
        metavar="CHECKPOINT", show_default=False,
        help="Checkpoint directory (runs/NAME/RUN/checkpoints/best), a run directory for "
             "its best checkpoint (runs/NAME/latest: the newest run of NAME), or a seed group "
             "for its best seed's (by the monitored metric; or GROUP/seed-N).")],
    split: Annotated[Split, typer.Option(help="Data split to evaluate on.")] = "test",
    data: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default=False,
        help="Evaluate on this labelled CSV/Parquet/NPZ file instead of a split.")] = None,
    target: Annotated[str | None, typer.Option(
        metavar="COL", show_default=False,
        help="Label column of --data (default: the one the model was trained with).")] = None,
    threshold: ThresholdOpt = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the metrics as JSON instead of tables (with the checkpoint "
                       "path, its epoch and macro averages).")] = False,
    allow_changed_data: AllowChangedOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Evaluate a saved checkpoint: loss, accuracy, per-class metrics, confusion matrix.

    A split is rebuilt from the training data file, which must still hold the bytes the run
    trained on (its size, time stamp and SHA-256 are in the checkpoint). With --data, on a
    new labelled file: its labels are matched to the class names (a regression model's
    target columns by name). A binary classifier also gets ROC-AUC and PR-AUC of its
    positive class (the second class) and, evaluating a split, the threshold that maximizes
    balanced accuracy on the validation split, to pass to --threshold.
    """
    _run(ctx, debug=debug, body=lambda: _eval(checkpoint, split, as_json=as_json, data=data,
                                              target=target, threshold=threshold,
                                              allow_changed_data=allow_changed_data))


def checkpoint_dir(path: Path) -> Path:
    """A checkpoint directory, a run directory's `checkpoints/best`, or a seed group's best
    seed's (by the monitored validation metric; one line on stderr says which); `latest`
    resolved anywhere in the path."""
    from fcnet_cli.engine.store.locate import locate_checkpoint

    found = locate_checkpoint(path)
    line = found.seed_line()
    if line is not None:
        typer.echo(line, err=True)
    return found.dir


def eval_payload(checkpoint: Path, result: "EvalResult") -> dict[str, Any]:
    """`eval --json`: the checkpoint, its epoch, the metrics and their macro averages."""
    epoch = None
    try:
        epoch = json.loads((checkpoint / RunDir.META).read_text(encoding="utf-8")).get("epoch")
    except (OSError, ValueError):
        pass
    k = len(result.classes) or 1
    macro = {name: sum(values) / k for name, values in (
        ("precision", result.precision), ("recall", result.recall), ("f1", result.f1))}
    return {"checkpoint": str(checkpoint), "epoch": epoch, **result.to_dict(), "macro": macro}


def _eval(checkpoint: Path, split: str, *, as_json: bool, data: Path | None = None,
          target: str | None = None, threshold: float | None = None,
          allow_changed_data: bool = False) -> int:
    checkpoint = checkpoint_dir(checkpoint)
    if data is not None:
        from fcnet_cli.serve.evaluate import evaluate_file
        from fcnet_cli.serve.model import load_model

        model = load_model(checkpoint)
        model.set_threshold(threshold)
        result = evaluate_file(model, data, target)
    else:
        if target is not None:
            raise UsageError("--target needs --data")
        from fcnet_cli.engine.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(checkpoint, split, threshold,
                                     allow_changed_data=allow_changed_data)
    if as_json:
        typer.echo(json.dumps(eval_payload(checkpoint, result), indent=2))
    else:
        from fcnet_cli import display

        display.render_eval(display.make_console(), result)
    return 0

"""`fcnet sweep`."""

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from fcnet_cli.cli.app import EXIT_SIGNAL, DebugOpt, ThreadsOpt, _run, app
from fcnet_cli.cli.pipes import StdoutGuard, stdout_may_close
from fcnet_cli.cli.run import _signals_to
from fcnet_cli.cli.tracking import MlflowOpt, sweep_tracking, sync_sweep_dir

# ---------------------------------------------------------------- sweep


@app.command()
def sweep(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Sweep YAML file.", show_default=False)],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", "-s", metavar="KEY=VALUE", show_default=False,
        help="Override a sweep key (--set seeds=1), a base experiment field (--set "
             "base.training.epochs=5; it replaces a one-value parameter that pins the field, "
             "and is an error for a field the sweep varies) or one parameter's values "
             "(--set parameters.optimizer.lr=[0.01,0.1]); repeatable.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, metavar="N", help="Local worker processes sharing the sweep's study.")] = 1,
    storage: Annotated[str | None, typer.Option(
        metavar="URL", show_default=False,
        help="Shared study database for workers on many machines, e.g. "
             "postgresql://user:password@host/db (default: a journal file in the sweep "
             "folder).")] = None,
    top: Annotated[int, typer.Option(
        min=0, metavar="N", help="Leaderboard rows to show (0 = all).")] = 10,
    threads: ThreadsOpt = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the leaderboard (the --top trials) as JSON instead of "
                       "tables.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the sweep directory.")] = False,
    ensemble: Annotated[int | None, typer.Option(
        min=1, metavar="N", show_default=False,
        help="Then join the top N completed trials of the best trial's layout into one "
             "ensemble (SWEEP_DIR/ensembles/topN/<run-id>: eval, predict, export take "
             "it).")] = None,
    mlflow: MlflowOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run (or resume) a hyperparameter sweep on Optuna; trials that share a layout are
    trained together as one population.

    Writes runs/NAME/: the study, sweep.yaml, leaderboard.csv and one run directory per trial
    and seed under trials/ (fcnet eval works on their checkpoints). Running the same command
    again resumes the sweep. Ctrl-C stops after the current batch; unfinished trials are
    re-run next time.
    """
    overrides = [*(set_ or []), *([f"base.training.threads={threads}"] if threads else [])]
    again = rerun_command(config, set_ or [], workers, storage, threads)
    _run(ctx, debug=debug, body=lambda: _sweep(config, overrides, workers, storage, top,
                                               as_json=as_json, quiet=quiet, again=again,
                                               ensemble=ensemble, mlflow=mlflow))


def rerun_command(config: Path, overrides: list[str], workers: int, storage: str | None,
                  threads: int | None) -> str:
    """The command that resumes this sweep: the same file, --set items and workers (a
    storage URL with its password replaced by ***)."""
    words = ["fcnet", "sweep", str(config)]
    for item in overrides:
        words += ["--set", item]
    if workers != 1:
        words += ["--workers", str(workers)]
    if threads:
        words += ["--threads", str(threads)]
    if storage:
        from fcnet_cli.sweep.store import redact

        words += ["--storage", redact(storage)]
    return shlex.join(words)


def _sweep(config: Path, overrides: list[str], workers: int, storage: str | None, top: int,
           *, as_json: bool, quiet: bool, again: str = "", ensemble: int | None = None,
           mlflow: str | None = None) -> int:
    from fcnet_cli import display
    from fcnet_cli.events import StopToken
    from fcnet_cli.sweep.load import load_sweep

    spec = load_sweep(config, overrides)  # exit 2 here, before torch is imported
    tracking = sweep_tracking(spec.base_exp, spec.name, mlflow)  # mlflow missing: exit 2
    from fcnet_cli.sweep.store import open_store

    open_store(spec, storage)  # an unreachable storage or a changed spec fails before torch
    from fcnet_cli.sweep.run import run_sweep

    out = display.make_console()
    for note in spec.notes:
        typer.echo(f"note: {note}", err=True)
    stop = StopToken()
    # a closed stdout (`fcnet sweep … | head -1`) stops the printing, never the sweep
    live = None if quiet or as_json else StdoutGuard(
        display.SweepDisplay(out, top=min(top or 5, 5)))
    try:
        with _signals_to(stop):
            result = run_sweep(spec, storage=storage, workers=workers,
                               callbacks=[live] if live else [], stop=stop)
    finally:
        if live is not None:
            live.close()
    with stdout_may_close():
        if as_json:
            typer.echo(json.dumps(result.to_dict(top), indent=2))
        elif quiet:
            typer.echo(result.sweep_dir)
        else:
            display.render_leaderboard(out, result, top)
    sync_sweep_dir(tracking, Path(result.sweep_dir), quiet=quiet or as_json)
    if stop.requested:
        typer.echo(f"interrupted ({stop.reason}); resume with: {again}", err=True)
        return EXIT_SIGNAL.get(stop.reason or "SIGINT", EXIT_SIGNAL["SIGINT"])
    if result.total and result.counts.get("failed", 0) >= result.total:
        typer.echo("error: every configuration failed", err=True)
        return 1
    if ensemble is not None:
        from fcnet_cli.sweep.ensemble import ensemble_from_sweep

        joined = ensemble_from_sweep(result, ensemble)
        typer.echo(joined.line(), err=quiet or as_json)
    return 0

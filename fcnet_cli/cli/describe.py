"""`fcnet validate`, `fcnet schema`, `fcnet compare` and `fcnet plot`."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fcnet_cli.cli.app import ConfigArg, DebugOpt, SetOpt, _run, app
from fcnet_cli.config.schema import Monitor
from fcnet_cli.errors import UsageError

if TYPE_CHECKING:
    from fcnet_cli.analysis.compare import RunRecord

# ---------------------------------------------------------------- validate / schema


@app.command()
def validate(
    ctx: typer.Context,
    config: ConfigArg,
    set_: SetOpt = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show every field with its value, where the value came from (file "
                          "and line, --set, or default), its default and meaning.")] = False,
    data: Annotated[bool, typer.Option(
        "--data", help="Also open the data as train would (columns, target, missing cells, "
                       "categories) and print its rows, splits and columns instead of the "
                       "config; what train would refuse is an error here.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Check an experiment file and print the resolved config that train would run.

    The files it extends are merged in first. Each problem is reported on its own line as
    FILE:LINE: FIELD: PROBLEM (exit code 2). With --data the table is read and split too,
    without training: a data problem gets the error train would print (exit code 2).
    """
    _run(ctx, debug=debug, body=lambda: _validate(config, set_ or [], explain=explain, data=data))


def _validate(config: Path, overrides: list[str], *, explain: bool, data: bool = False) -> int:
    from fcnet_cli import config as cfg
    from fcnet_cli import display
    from fcnet_cli.engine.train import defaults  # torch-free: the default rule

    source = cfg.load_source(config, overrides)
    exp = cfg.validate(source)
    out = display.make_console()
    pairs: list[tuple[str, str]] = []
    notices: list[str] = []
    sources = cfg.explain(exp, source)
    if data:
        from fcnet_cli.cli.datacheck import data_summary  # torch: only with --data

        pairs, notices, facts = data_summary(exp)
        exp, reasons = defaults.resolve_defaults(exp, facts, ensemble=True)
        sources.update(reasons)
    else:
        sources.update({k: AUTO_LATER for k in defaults.auto_fields(exp)})
    if explain:
        from fcnet_cli.config.typetext import value_text

        values = {k: value_text(v) for k, v in cfg.flatten(exp.model_dump()).items()}
        display.render_schema(out, cfg.describe_schema(), values, sources)
    elif not data:
        display.render_config(out, cfg.dump_experiment(exp))
    if data:
        display.render_data_summary(out, pairs, notices)
    return 0


AUTO_LATER = "auto: resolved from the data when training (validate --data shows the value)"


@app.command()
def schema(ctx: typer.Context, debug: DebugOpt = False) -> None:
    """List every experiment field with its type, default and description."""
    _run(ctx, debug=debug, body=_schema)


def _schema() -> int:
    from fcnet_cli import display
    from fcnet_cli.config import describe_schema

    display.render_schema(display.make_console(), describe_schema())
    return 0


@app.command()
def datasets(
    ctx: typer.Context,
    root: Annotated[Path, typer.Option(metavar="DIR",
        help="Folder searched for torchvision data sets (data.root).")] = Path("data"),
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the list as JSON instead of a table.")] = False,
    debug: DebugOpt = False,
) -> None:
    """List the built-in data sets: source, rows, features, classes (or regression) and
    whether each is readable offline right now. Your own tables use data.dataset: csv,
    parquet or npz with data.path."""
    _run(ctx, debug=debug, body=lambda: _datasets(root, as_json=as_json))


def _datasets(root: Path, *, as_json: bool) -> int:
    import json

    from fcnet_cli.engine.data.catalog import builtin_datasets

    found = builtin_datasets(root)
    if as_json:
        typer.echo(json.dumps([d.to_dict() for d in found], indent=2))
        return 0
    from fcnet_cli import display

    rows = [[d.name, d.source, str(d.rows), str(d.features),
             "regression" if d.classes is None else str(d.classes),
             "yes" if d.available else "no"] for d in found]
    missing = [d for d in found if not d.available]
    # the location of a missing set is a long path: one caption line instead of a wide column
    caption = (f"no: files not under {root}; set data.root (--root here), or "
               "data.download: true to fetch them") if missing else None
    display.render_comparison(display.make_console(),
                              ["data set", "source", "rows", "features", "classes",
                               "offline"], rows, caption=caption, priorities=[0, 1, 0, 0, 0, 0])
    return 0


# ---------------------------------------------------------------- compare / plot


RunsArg = Annotated[list[Path], typer.Argument(
    metavar="RUN_DIR_OR_SWEEP_DIR...", show_default=False,
    help="Run directories, or folders searched for them (any folder with summary.json and "
         "config.yaml), e.g. a sweep directory.")]
MetricOpt = Annotated[Monitor | None, typer.Option(
    "--metric", show_default=False,
    help="Sweep folder: the validation metric to plot (at each run's best epoch); default: "
         "the sweep's own metric.")]


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
    metric: Annotated[Monitor | None, typer.Option(
        "--metric", show_default=False,
        help="Validation metric to rank and plot by (at each run's best epoch); default: a "
             "sweep folder's own metric, else val_accuracy (val_rmse for regression runs).")
    ] = None,
    best: Annotated[int, typer.Option(
        "--best", min=0, metavar="N",
        help="With --plot: draw the best N runs, labelled by their parameter values "
             "(0 = all).")] = 10,
    columns: Annotated[str | None, typer.Option(
        "--columns", metavar="A,B,...", show_default=False,
        help="Show exactly these columns after the run's name, at any terminal width: CSV "
             "names or headers, comma-separated (e.g. best_val_accuracy,ci95,vs_best).")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Compare runs in one table, best first (the metric's own direction: lower loss, RMSE
    and MAE, higher accuracy, F1 and R²).

    One row per run: the hyperparameters that differ between the runs, the best validation
    metric, the test metric of the best checkpoint, the best and last epoch, the train/val gap
    at the best epoch, the fraction of weights with |w| < 1e-3, the total weight L2 norm and
    the seconds it took. Given one sweep directory, also prints Optuna's parameter importances.

    Runs that repeat a configuration with several seeds (seed groups from train --seeds,
    sweeps with seeds > 1) give one row per configuration instead: mean ± std over the seeds,
    the 95% t-interval (cut to the metric's range, marked *), and a Welch t-test against the
    best row ("within noise" when p >= 0.05); a repeated (configuration, seed) counts once.
    """
    _run(ctx, debug=debug, body=lambda: _compare(paths, csv, markdown, plot, metric, best, columns))


def _check_png(path: Path | None) -> None:
    if path is not None and path.suffix.lower() != ".png":
        raise UsageError(f"{path}: the figure is written as PNG; give a name ending in .png")


def _default_metric(paths: list[Path], runs: "list[RunRecord]") -> str:
    """A sweep folder's own metric; else val_accuracy, or val_rmse when no run has accuracy."""
    from fcnet_cli.analysis import compare as report
    from fcnet_cli.engine.store.files import resolve_latest

    if len(paths) == 1:
        own = report.sweep_metric(resolve_latest(paths[0]))
        if own is not None:
            return own
    if runs and all(report.metric_value(r, "val_accuracy") is None and
                    report.metric_value(r, "val_rmse") is not None for r in runs):
        return "val_rmse"
    return "val_accuracy"


def _compare(paths: list[Path], csv: Path | None, markdown: Path | None, plot: Path | None,
             metric: str | None, best: int = 10, columns: str | None = None) -> int:
    from fcnet_cli import display
    from fcnet_cli.analysis import compare as report
    from fcnet_cli.analysis import seedtable
    from fcnet_cli.engine.store.files import resolve_latest

    _check_png(plot)
    for target in (csv, markdown, plot):  # refused before any work: links, runs, inputs
        if target is not None:
            _check_out(target)
    runs = report.load_runs(paths)
    metric = metric or _default_metric(paths, runs)
    # several seeds of one configuration (seed groups, sweeps): one row per configuration
    repeats = seedtable.has_repeats(runs)
    table = seedtable.compare_configs(runs, metric) if repeats else report.compare(runs, metric)
    if columns is not None:
        table.select([c for c in columns.split(",") if c.strip()] or [columns])
    out = display.make_console()
    display.render_comparison(out, table.headers(), table.cells(),
                              caption=table.caption(), priorities=table.priorities())
    sweep = len(paths) == 1 and not report.is_run_dir(resolve_latest(paths[0]))
    swept = report.swept_params(paths[0], runs) if sweep else None
    if sweep and len(runs) > 2:
        from fcnet_cli.analysis.importances import param_importances

        found = param_importances(paths[0], runs, metric, swept)
        if found is not None:
            display.render_importances(out, found.rows, found.source)
    for path, write in ((csv, table.write_csv), (markdown, table.write_markdown)):
        if path is not None:
            typer.echo(f"wrote {_write(path, write)}", err=True)
    if plot is not None:
        from fcnet_cli.analysis.plots import plot_overlay

        drawn = _write(plot, lambda tmp: plot_overlay(runs, tmp, metric, best, swept))
        typer.echo(f"wrote {drawn}", err=True)
    return 0


def _check_out(out: Path, figure_of: Path | None = None) -> None:
    """The checks predict makes; compare and plot have no --overwrite: a file is replaced,
    and a missing folder is created (both as before these checks)."""
    from fcnet_cli.serve.outpath import check_output

    check_output(out, [], overwrite=True, figure_of=figure_of, make_parents=True)


def _write(out: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temporary file beside ``out``, published whole (or not at all)."""
    from fcnet_cli.serve.outpath import staged_output

    with staged_output(out, overwrite=True) as tmp:
        write(tmp)
    return out


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
    metric: MetricOpt = None,
    boundary: Annotated[bool, typer.Option(
        "--boundary", help="Draw the decision regions of the run's best checkpoint instead "
                           "(runs with 2 input features; default file boundary.png).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Draw a run's learning curves in one PNG figure.

    Loss and accuracy (training dashed, validation solid), the learning rate and the
    generalization gap, per epoch. For a sweep directory: the best validation metric of
    every run against each swept parameter.
    """
    _run(ctx, debug=debug, body=lambda: _plot(path, output, metric, boundary=boundary))


def _plot(path: Path, output: Path | None, metric: str | None, *, boundary: bool = False) -> int:
    from fcnet_cli.analysis import compare as report
    from fcnet_cli.analysis import plots
    from fcnet_cli.engine.store.files import resolve_latest

    _check_png(output)
    path = resolve_latest(path)
    report.find_runs([path])  # a missing folder or one without runs: said first
    one_run = report.is_run_dir(path)
    if boundary and not one_run:
        raise UsageError(f"{path}: --boundary draws one run; give a run directory")
    default = "boundary.png" if boundary else "curves.png" if one_run else "sweep.png"
    out = output or path / default
    _check_out(out, figure_of=path)  # the figure may go in the run it describes, nowhere else
    if boundary:
        from fcnet_cli.analysis.boundary import check_two_features, plot_boundary

        run = report.load_runs([path])[0]
        check_two_features(run)
        written = _write(out, lambda tmp: plot_boundary(run, tmp))
    elif one_run:
        record = report.load_runs([path])[0]
        written = _write(out, lambda tmp: plots.plot_run(record, tmp))
    else:
        runs = report.load_runs([path])
        params = report.swept_params(path, runs)
        chosen = metric or _default_metric([path], runs)
        written = _write(out, lambda tmp: plots.plot_sweep(runs, params, tmp, chosen))
    typer.echo(str(written))
    return 0

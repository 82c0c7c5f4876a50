"""`fcnet predict` and `fcnet export`: thin commands over `fcnet_cli.serve`."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fcnet_cli.cli.app import AllowChangedOpt, DebugOpt, _run, app
from fcnet_cli.cli.pipes import silence_stdout
from fcnet_cli.cli.run import checkpoint_dir
from fcnet_cli.config.schema import ExportFormat, PredictFormat, Split
from fcnet_cli.errors import UsageError

if TYPE_CHECKING:
    from fcnet_cli.serve.model import Model

CheckpointArg = Annotated[Path, typer.Argument(
    help="Checkpoint directory, a run directory (its best checkpoint), or a seed group (its "
         "best seed's, by the monitored metric).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing output file.")]


def _model(checkpoint: Path) -> "Model":
    checkpoint = checkpoint_dir(checkpoint)  # as `eval` takes it (runs/NAME/latest too)
    from fcnet_cli.serve.model import load_model  # torch: only once the arguments are sane

    return load_model(checkpoint)


# ---------------------------------------------------------------- predict


@app.command()
def predict(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    data: Annotated[Path | None, typer.Argument(
        help="CSV (.csv, .csv.gz), Parquet or NPZ file of feature rows.",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="Output file (default: CSV on stdout).")] = None,
    proba: Annotated[bool, typer.Option(
        "--proba", help="Add one proba_<class> column per class.")] = False,
    keep: Annotated[list[str] | None, typer.Option(
        "--keep", metavar="COL", show_default=False,
        help="Copy an input column (e.g. an id) into the output (repeatable).")] = None,
    fmt: Annotated[PredictFormat | None, typer.Option(
        "--format", show_default=False,
        help="Output format; default from the -o suffix, else csv.")] = None,
    split: Annotated[Split | None, typer.Option(
        show_default=False, help="Predict the checkpoint's own split instead of DATA.")] = None,
    batch_size: Annotated[int, typer.Option(
        metavar="ROWS", help="Rows read, predicted and written at a time (bounds the memory).")
    ] = 65536,
    overwrite: OverwriteOpt = False,
    allow_changed_data: AllowChangedOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Predict the class of every row of DATA, in input order, with the checkpoint's own
    preprocessing.

    CSV and Parquet columns are matched by name (extra columns are ignored, missing ones are
    an error); NPZ arrays x by width. Rows are streamed in chunks of --batch-size, and the
    output is written to a temporary file renamed into place at the end.
    """
    _run(ctx, debug, lambda: _predict(checkpoint, data, out, proba, keep or [], fmt,
                                      split, batch_size, overwrite, allow_changed_data))


def _predict(checkpoint: Path, data: Path | None, out: Path | None, proba: bool,
             keep: list[str], fmt: str | None, split: str | None, batch_size: int,
             overwrite: bool, allow_changed_data: bool = False) -> int:
    if (data is None) == (split is None):
        raise UsageError("give a DATA file or --split train|val|test (one of the two)")
    if split is not None and keep:
        raise UsageError("--keep needs a DATA file (a split has no extra columns)")
    model = _model(checkpoint)
    from fcnet_cli.serve.predict import predict_file, predict_split

    try:
        if data is not None:
            report = predict_file(model, data, out, proba=proba, keep=keep, fmt=fmt,
                                  batch_size=batch_size, overwrite=overwrite, stream=sys.stdout)
        else:
            assert split is not None
            report = predict_split(model, split, out, proba=proba, fmt=fmt,
                                   batch_size=batch_size, overwrite=overwrite, stream=sys.stdout,
                                   allow_changed_data=allow_changed_data)
    except BrokenPipeError:  # `fcnet predict … | head`: the reader has what it wanted
        silence_stdout()
        return 0
    for note in report.notices:
        typer.echo(note, err=True)
    if report.ignored:
        typer.echo(f"note: ignored {len(report.ignored)} column(s) the model does not use: "
                   f"{', '.join(report.ignored)}", err=True)
    if report.output is not None:
        typer.echo(f"wrote {report.rows} predictions to {report.output}", err=True)
    return 0


# ---------------------------------------------------------------- export


@app.command()
def export(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="onnx (needs the export extra) or torchscript.")],
    out: Annotated[Path, typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="The model file to write.")],
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a checkpoint as a graph that takes raw features and returns probabilities
    (regression: the predicted values in the target's own units).

    The fitted normalization is inside the graph; the batch axis is dynamic. ONNX has a
    second output, the logits (classification). A sidecar OUT.json lists the feature names
    in order, the class (or target) names, the fcnet version and the source checkpoint's
    sha256.
    """
    _run(ctx, debug, lambda: _export(checkpoint, fmt, out, overwrite))


def _export(checkpoint: Path, fmt: str, out: Path, overwrite: bool) -> int:
    model = _model(checkpoint)
    from fcnet_cli.serve.export import export_model

    report = export_model(model, out, fmt, overwrite=overwrite)
    typer.echo(f"wrote {report.path} ({report.format}) and {report.sidecar}")
    return 0

"""`fcnet predict`, `fcnet splits` and `fcnet export`: thin commands over `fcnet_cli.serve`."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fcnet_cli.cli.app import AllowChangedOpt, DebugOpt, _run, app
from fcnet_cli.cli.pipes import silence_stdout
from fcnet_cli.cli.run import ThresholdOpt, checkpoint_dir
from fcnet_cli.config.schema import ExportFormat, PredictFormat, Split
from fcnet_cli.errors import UsageError

if TYPE_CHECKING:
    from fcnet_cli.serve.model import Model

CheckpointArg = Annotated[Path, typer.Argument(
    help="Checkpoint directory, a run directory (its best checkpoint), or a seed group (its "
         "best seed's, by the monitored metric).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing output file.")]


def _destination(out: Path | None) -> Path | None:
    """``-o FILE`` as a path; ``-o -`` or no ``-o``: None (standard output, which must be
    open)."""
    from fcnet_cli.serve.outpath import is_stdout

    if out is not None and not is_stdout(out):
        return out
    if sys.stdout is None or sys.stdout.closed:
        raise UsageError("standard output is closed; give -o FILE")
    return None


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
    threshold: ThresholdOpt = None,
    keep: Annotated[list[str] | None, typer.Option(
        "--keep", metavar="COL", show_default=False,
        help="Copy an input column (e.g. an id) into the output (repeatable); with --split, "
             "from the data's source file.")] = None,
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
    _run(ctx, debug=debug, body=lambda: _predict(checkpoint, data, out, proba=proba,
                                                 keep=keep or [], fmt=fmt, split=split,
                                                 batch_size=batch_size, overwrite=overwrite,
                                                 threshold=threshold,
                                                 allow_changed_data=allow_changed_data))


def _predict(checkpoint: Path, data: Path | None, out: Path | None, *, proba: bool,
             keep: list[str], fmt: str | None, split: str | None, batch_size: int,
             overwrite: bool, threshold: float | None = None,
             allow_changed_data: bool = False) -> int:
    if (data is None) == (split is None):
        raise UsageError("give a DATA file or --split train|val|test (one of the two)")
    out = _destination(out)
    model = _model(checkpoint)
    model.set_threshold(threshold)
    from fcnet_cli.serve.predict import predict_file, predict_split

    try:
        if data is not None:
            report = predict_file(model, data, out, proba=proba, keep=keep, fmt=fmt,
                                  batch_size=batch_size, overwrite=overwrite, stream=sys.stdout)
        else:
            assert split is not None
            report = predict_split(model, split, out, proba=proba, fmt=fmt, keep=keep,
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
    if report.unseen and data is not None:
        typer.echo(f"note: {report.unseen.message(str(data))}", err=True)
    if report.output is not None:
        typer.echo(f"wrote {report.rows} predictions to {report.output}", err=True)
    return 0


# ---------------------------------------------------------------- splits


@app.command()
def splits(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="Output file (default: CSV on stdout).")] = None,
    keep: Annotated[list[str] | None, typer.Option(
        "--keep", metavar="COL", show_default=False,
        help="Copy a column of the source file (e.g. an id) into the output (repeatable).")
    ] = None,
    fmt: Annotated[PredictFormat | None, typer.Option(
        "--format", show_default=False,
        help="Output format; default from the -o suffix, else csv.")] = None,
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List which rows of the run's data went to train, validation and test.

    One line per data row: split, row (1 = the first data row, as fcnet's messages count
    rows) and the --keep columns; train rows first, then val, then test, each in the order
    eval --split and predict --split use. The split is rebuilt from the run's stored config
    (data.split_seed, the fractions), so the source file must still be there.
    """
    _run(ctx, debug=debug,
         body=lambda: _splits(checkpoint, out, keep or [], fmt, overwrite=overwrite))


def _splits(checkpoint: Path, out: Path | None, keep: list[str], fmt: str | None,
            *, overwrite: bool) -> int:
    out = _destination(out)
    model = _model(checkpoint)
    from fcnet_cli.serve.splits import split_table, write_splits

    frame = split_table(model, keep)
    try:
        write_splits(frame, out, fmt, overwrite=overwrite, stream=sys.stdout)
    except BrokenPipeError:  # `fcnet splits … | head`
        silence_stdout()
        return 0
    if out is not None:
        counts = frame.get_column("split").value_counts(sort=False)
        n = dict(zip(counts["split"].to_list(), counts["count"].to_list(), strict=True))
        typer.echo(f"wrote {out}: {n.get('train', 0)} train, {n.get('val', 0)} val, "
                   f"{n.get('test', 0)} test rows", err=True)
    return 0


# ---------------------------------------------------------------- export


@app.command()
def export(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="onnx (raw table columns in; needs the export extra) or pt2 "
        "(torch.export, encoded columns in). torchscript: deprecated alias of pt2.")],
    out: Annotated[Path, typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="The model file to write (pt2: a name ending in .pt2).")],
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a checkpoint as a graph that returns probabilities (regression: the predicted
    values in the target's own units); the batch axis is dynamic.

    ONNX: a model of a CSV/Parquet table takes its raw columns, one (batch, 1) input per
    column named as the column: float32 for numbers (NaN = missing), string for categories
    ("" = missing); imputation, missing indicators, one-hot encoding, normalization and the
    network are inside, and a second output holds the logits (classification). Other data
    sets take one `features` (batch, F) float32 input. pt2 (torch.export.load): tensors only,
    so it takes the encoded columns (batch, F) and holds the normalization and network. A
    sidecar OUT.json describes every input (dtype, categories, missing value, fill), the
    outputs, the class (or target) names, the fcnet version and the checkpoint's sha256.
    """
    _run(ctx, debug=debug, body=lambda: _export(checkpoint, fmt, out, overwrite=overwrite))


def _export(checkpoint: Path, fmt: str, out: Path, *, overwrite: bool) -> int:
    from fcnet_cli.serve.outpath import is_stdout

    if is_stdout(out):
        raise UsageError("-o -: export writes a model file and its sidecar; give -o FILE")
    model = _model(checkpoint)
    from fcnet_cli.serve.export import export_model

    report = export_model(model, out, fmt, overwrite=overwrite)
    if fmt == "torchscript":
        typer.echo(f"note: --format torchscript is deprecated (torch.jit is); wrote a "
                   f"torch.export program to {report.path}: load it with torch.export.load",
                   err=True)
    typer.echo(f"wrote {report.path} ({report.format}) and {report.sidecar}")
    return 0

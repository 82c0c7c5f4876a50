"""Streaming prediction: read a chunk of rows → encode → forward → write, until the file ends.

Peak memory is one chunk of input, its features and its outputs (plus the model), whatever
the file size; the output goes to a temporary file that is renamed into place only when every
row is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
import torch

from fcnet_cli.config import SPLITS
from fcnet_cli.engine.data.lineage import check_lineage
from fcnet_cli.engine.data.load import Normalization, load_data
from fcnet_cli.engine.data.reader import Table, open_table
from fcnet_cli.engine.data.tables import UnseenCategories
from fcnet_cli.engine.evaluate import EVAL_ROWS, require_rows
from fcnet_cli.errors import DataError, UsageError
from fcnet_cli.serve.model import Model
from fcnet_cli.serve.splits import split_kept
from fcnet_cli.serve.writer import ChunkWriter, check_output, format_for, staged_output

__all__ = ["PredictReport", "predict_file", "predict_split", "output_columns"]

PREDICTION = "prediction"
Chunk = tuple[pl.DataFrame | None, np.ndarray]  # (kept columns or None, features (B, F))


@dataclass
class PredictReport:
    """What a prediction run did: rows written, where, the input columns it ignored and the
    categories training never saw (encoded as all zeros; `unseen.message(source)` says so)."""

    rows: int
    output: Path | None
    format: str
    ignored: list[str] = field(default_factory=list)
    unseen: UnseenCategories = field(default_factory=UnseenCategories)
    notices: list[str] = field(default_factory=list)  # e.g. a changed training data file


def output_columns(model: Model, *, proba: bool) -> list[str]:
    """The columns `predict` adds: ``prediction`` and, with ``proba``, ``proba_<class>``;
    for a regression model, one column per target, named like it."""
    if model.task == "regression":
        return list(model.target.names)
    return [PREDICTION] + ([f"proba_{c}" for c in model.classes_] if proba else [])


def _scores(model: Model, x: np.ndarray, *, proba: bool) -> pl.DataFrame:
    """One chunk's prediction columns from encoded features ``x`` (B, F) float32."""
    if model.task == "regression":  # the target in its own units, under its own name(s)
        y = model.values_of(x)  # (B, T)
        return pl.DataFrame([pl.Series(n, y[:, j]) for j, n in enumerate(model.target.names)])
    # sub-batches keep the hidden activations small: (EVAL_ROWS, width) each
    logits = torch.from_numpy(model.logits(x, EVAL_ROWS))  # (B, C)
    names = pl.Series(PREDICTION, model.classes_.tolist(), dtype=pl.String)
    cols = [names.gather(pl.Series(model.decide(logits.numpy()), dtype=pl.UInt32))]
    if proba:
        p = torch.softmax(logits, dim=-1).numpy()  # (B, C)
        cols += [pl.Series(f"proba_{c}", p[:, j]) for j, c in enumerate(model.classes_)]
    return pl.DataFrame(cols)


def _write_all(model: Model, chunks: Iterable[Chunk], out: Path | None, fmt: str | None,
               *, proba: bool, keep: Sequence[str], stream: IO[str] | None,
               overwrite: bool = False) -> tuple[int, str]:
    """Predict every chunk and write it; returns (rows, format)."""
    fmt_ = format_for(out, fmt)
    empty = pl.DataFrame({c: [] for c in keep}).with_columns(pl.all().cast(pl.String)).hstack(
        _scores(model, np.zeros((0, model.n_inputs), np.float32), proba=proba))
    if out is None:
        writer = ChunkWriter(fmt_, None, stream)
        for kept, x in chunks:
            writer.write(_joined(kept, _scores(model, x, proba=proba)))
        writer.close(empty)
        return writer.rows, fmt_
    with staged_output(out, overwrite=overwrite) as tmp:
        writer = ChunkWriter(fmt_, tmp)
        try:
            for kept, x in chunks:
                writer.write(_joined(kept, _scores(model, x, proba=proba)))
            writer.close(empty)
        except BaseException:
            writer.abort()
            raise
    return writer.rows, fmt_


def _joined(kept: pl.DataFrame | None, scores: pl.DataFrame) -> pl.DataFrame:
    return scores if kept is None or not kept.width else kept.hstack(scores)


MAX_BATCH_ROWS = 1 << 24  # rows per chunk: bounds the memory of one chunk, whatever is asked


def _check_options(model: Model, *, proba: bool, batch_size: int) -> None:
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {batch_size})")
    if batch_size > MAX_BATCH_ROWS:
        raise UsageError(f"--batch-size must be at most {MAX_BATCH_ROWS:,} rows "
                         f"(got {batch_size:,})")
    if proba and model.task == "regression":
        raise UsageError("--proba: a regression model predicts values, not class probabilities")


def _check_keep(model: Model, keep: Sequence[str], columns: list[str], source: str,
                *, proba: bool) -> list[str]:
    keep = list(dict.fromkeys(keep))
    missing = [c for c in keep if c not in columns]
    if missing:
        raise DataError(f"{source}: no column(s) {', '.join(missing)} to keep "
                        f"(columns: {', '.join(columns)})")
    clash = [c for c in keep if c in output_columns(model, proba=proba)]
    if clash:
        raise UsageError(f"--keep {clash[0]}: the output already has a column of that name")
    return keep


def _table_chunks(model: Model, table: Table, keep: list[str], batch_rows: int,
                  unseen: UnseenCategories) -> Iterator[Chunk]:
    """Encoded chunks of ``table``; unseen categories are counted into ``unseen``."""
    if table.kind == "npz":
        x_all = table.npz_array("x")
        kept_all = {c: table.npz_array(c) for c in keep}
        for start in range(0, len(x_all), batch_rows):
            x, new = model.spec.encode_array_counted(x_all[start:start + batch_rows],
                                                     table.source, start)
            unseen.add(new)
            kept = pl.DataFrame({c: a[start:start + batch_rows] for c, a in kept_all.items()})
            yield kept, x
        return
    names = model.spec.names  # the raw columns; encoding happens in spec.encode
    dtypes = {**{c: pl.String for c in keep}, **model.spec.read_dtypes()}
    columns = list(dict.fromkeys(names + keep))
    for start, frame in table.frames(columns, dtypes, batch_rows):
        x, new = model.spec.encode_counted(frame, table.source, start)
        unseen.add(new)
        yield frame.select(keep), x


def predict_file(model: Model, data: Path, out: Path | None = None, *, proba: bool = False,
                 keep: Sequence[str] = (), fmt: str | None = None, batch_size: int = 65536,
                 overwrite: bool = False, stream: IO[str] | None = None) -> PredictReport:
    """Predict every row of a CSV/Parquet/NPZ file, in input order, in chunks.

    Args:
        model: from `load_model`.
        data: the feature rows; CSV/Parquet columns are matched by name, NPZ ``x`` by width.
        out: output file (written via a temporary file); None writes to ``stream``.
        proba: add one ``proba_<class>`` column per class.
        keep: input columns (NPZ: 1-D arrays) copied into the output, e.g. ids.
        fmt: ``csv``, ``parquet`` or ``json``; default from ``out``'s suffix, else CSV.
        batch_size: rows per chunk; bounds the memory used.
        overwrite: replace an existing ``out`` (never the input itself).
        stream: where output goes without ``out`` (e.g. stdout).

    Raises:
        DataError / UsageError: bad input or output (nothing is written).
    """
    _check_options(model, proba=proba, batch_size=batch_size)
    data = Path(data)
    if out is not None:
        check_output(Path(out), [data], overwrite=overwrite)
    table = open_table(data, model.experiment.data)
    format_for(out, fmt)  # an unknown format fails before any reading
    keep = _check_keep(model, keep, table.columns, table.source, proba=proba)
    if table.kind == "npz":
        ignored: list[str] = []
        model.spec.encode_array(table.npz_array("x")[:1], table.source)  # width, up front
    else:
        ignored = [c for c in model.spec.match(table.columns, table.source) if c not in keep]
    unseen = UnseenCategories()
    rows, fmt_ = _write_all(model, _table_chunks(model, table, keep, batch_size, unseen),
                            None if out is None else Path(out), fmt, proba=proba, keep=keep,
                            stream=stream, overwrite=overwrite)
    return PredictReport(rows, None if out is None else Path(out), fmt_, ignored, unseen=unseen)


def predict_split(model: Model, split: str, out: Path | None = None, *, proba: bool = False,
                  fmt: str | None = None, batch_size: int = 65536, overwrite: bool = False,
                  stream: IO[str] | None = None, keep: Sequence[str] = (),
                  allow_changed_data: bool = False) -> PredictReport:
    """Predict the checkpoint's own ``train``/``val``/``test`` split (rebuilt from its config).

    Rows come in the split's order, the same rows `fcnet eval --split` scores; ``keep``
    copies columns of those rows from the data's source file (`serve.splits.split_kept`).
    A changed or missing training data file is refused as `evaluate_checkpoint` refuses it.
    """
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    _check_options(model, proba=proba, batch_size=batch_size)
    if out is not None:
        check_output(Path(out), [], overwrite=overwrite)
    notices = check_lineage(model.checkpoint.meta, allow_changed=allow_changed_data)
    keep = list(dict.fromkeys(keep))
    clash = [c for c in keep if c in output_columns(model, proba=proba)]
    if clash:
        raise UsageError(f"--keep {clash[0]}: the output already has a column of that name")
    kept = _split_kept(model, split, keep)
    x = _rebuild_split(model, split)

    def chunks() -> Iterator[Chunk]:
        for start in range(0, len(x), batch_size):
            yield None if kept is None else kept.slice(start, batch_size), \
                x[start:start + batch_size]

    rows, fmt_ = _write_all(model, chunks(), None if out is None else Path(out), fmt, proba=proba,
                            keep=keep, stream=stream, overwrite=overwrite)
    return PredictReport(rows, None if out is None else Path(out), fmt_, notices=notices)


def _split_kept(model: Model, split: str, keep: list[str]) -> pl.DataFrame | None:
    return split_kept(model, split, keep) if keep else None


def raw_split(model: Model, split: str, *, allow_changed_data: bool = False) -> np.ndarray:
    """The encoded, un-normalized features (N, n_inputs) float32 of the checkpoint's own
    split (what `Model.module` and an exported graph take), from an unchanged data file."""
    check_lineage(model.checkpoint.meta, allow_changed=allow_changed_data)
    return _rebuild_split(model, split)


def _rebuild_split(model: Model, split: str) -> np.ndarray:
    exp = model.checkpoint.experiment()
    n = model.n_inputs
    identity = Normalization("none", torch.zeros(n), torch.ones(n))
    prep = replace(model.spec.prep, normalization=identity, embedding=None)
    splits = load_data(exp.data, task=exp.task, preprocessing=prep)
    if model.task == "classification" and list(splits.classes) != list(model.classes_):
        raise DataError(f"{exp.data.path or exp.data.dataset}: data set classes "
                        f"{splits.classes} differ from the checkpoint's {list(model.classes_)}")
    require_rows(splits, split)
    x, _ = splits.split(split)
    return np.ascontiguousarray(x.numpy())

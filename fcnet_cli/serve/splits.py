"""`fcnet splits`: the row numbers of each split of a checkpoint's data, with columns kept from
its source file, and those kept columns for `predict --split --keep`.

Row numbers count as fcnet's messages count them: 1 is the first data row (the line after
a CSV's header), so ``row`` here is the ``row N`` an error about that cell would name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from fcnet_cli.config import SPLITS
from fcnet_cli.engine.data.reader import open_table
from fcnet_cli.engine.data.splitrows import split_rows
from fcnet_cli.errors import DataError, UsageError
from fcnet_cli.serve.model import Model
from fcnet_cli.serve.writer import ChunkWriter, check_output, format_for, staged_output

__all__ = ["model_split_rows", "source_columns", "split_kept", "split_table", "write_splits"]

READ_ROWS = 65536


def model_split_rows(model: Model) -> dict[str, np.ndarray]:
    """0-based row indices of each split of the checkpoint's own data (its stored config
    and target), the rows `eval --split` and `predict --split` use, in their order."""
    exp = model.experiment
    return split_rows(exp.data, exp.task, model.target)


def source_columns(model: Model, keep: Sequence[str]) -> pl.DataFrame:
    """Columns ``keep`` of every row of the checkpoint's source file, as text (NPZ: the
    arrays as they are).

    Raises:
        UsageError: a built-in data set (no file to keep columns from).
        DataError: a missing file or column.
    """
    data = model.experiment.data
    if data.path is None:
        raise UsageError(f"--keep: {data.dataset} is a built-in data set; there is no source "
                         f"file to keep columns from")
    table = open_table(Path(data.path))
    missing = [c for c in keep if c not in table.columns]
    if missing:
        raise DataError(f"{table.source}: no column(s) {', '.join(missing)} to keep "
                        f"(columns: {', '.join(table.columns)})")
    if table.kind == "npz":
        return pl.DataFrame({c: table.npz_array(c) for c in keep})
    frames = [f for _, f in table.frames(list(keep), {c: pl.String for c in keep}, READ_ROWS)]
    return pl.concat(frames) if frames else pl.DataFrame({c: [] for c in keep})


def split_kept(model: Model, split: str, keep: Sequence[str]) -> pl.DataFrame:
    """Columns ``keep`` of the source file's rows of one split, in the split's order."""
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    rows = model_split_rows(model)[split]
    return source_columns(model, keep)[rows]


def split_table(model: Model, keep: Sequence[str] = ()) -> pl.DataFrame:
    """One row per data row: ``split`` (train/val/test), ``row`` (1-based) and the ``keep``
    columns; train rows first, then val, then test, each in row order."""
    keep = list(dict.fromkeys(keep))
    clash = [c for c in keep if c in ("split", "row")]
    if clash:
        raise UsageError(f"--keep {clash[0]}: the output already has a column of that name")
    rows = model_split_rows(model)
    order = np.concatenate([rows[s] for s in SPLITS])
    out = pl.DataFrame({
        "split": pl.Series([s for s in SPLITS for _ in range(len(rows[s]))], dtype=pl.String),
        "row": pl.Series(order + 1, dtype=pl.Int64)})
    return out.hstack(source_columns(model, keep)[order]) if keep else out


def write_splits(frame: pl.DataFrame, out: Path | None, fmt: str | None, *, overwrite: bool,
                 stream: IO[str] | None = None) -> str:
    """Write `split_table` output to ``out`` (CSV/Parquet/JSON by suffix or ``fmt``) via a
    temporary file, or to ``stream``; returns the format."""
    fmt_ = format_for(out, fmt)
    if out is None:
        writer = ChunkWriter(fmt_, None, stream)
        writer.write(frame)
        writer.close(frame.clear())
        return fmt_
    check_output(out, [], overwrite=overwrite)
    with staged_output(out, overwrite=overwrite) as tmp:
        writer = ChunkWriter(fmt_, tmp)
        try:
            writer.write(frame)
            writer.close(frame.clear())
        except BaseException:
            writer.abort()
            raise
    return fmt_

"""Tables read with polars, and the fitted preprocessing stored with every checkpoint.

Public surface (also used by `fcnet_cli.serve`):

    frame = read_table(path, "csv")                 # CSV, .csv.gz or Parquet -> polars.DataFrame
    x, unseen = prep.encode(frame)                  # (n, prep.in_features) float32 numpy
    prep = Preprocessing.from_meta(meta)            # from a checkpoint's meta.json

`Preprocessing` holds everything fitted on the training split: per raw input column (in the
order the model expects, `feature_names`) its kind (numeric, categorical or date), its
category list and canonical form (`engine.cells`), a date's origin (`engine.dates`), its
imputation value and whether a missing-indicator column follows it; the pixel
scale of image sets; the feature normalization; and the target side (`target`: the class
names, or the regression target names with the mean/std that un-standardize predictions).
`encode` selects columns BY NAME, so extra or reordered columns in the input are fine; it
also returns how many cells held a category unseen in training (those encode as all zeros,
or are an error under `unknown_categories: error`). Its inputs are unnormalized: the model's
normalization layer (`prep.normalization`) standardizes them. Errors are
`DataError`s naming the row, the column and the cell text.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import polars.selectors as cs

from fcnet_cli.engine.data.cells import (
    FALSE_SPELLINGS,
    FORMS,
    TRUE_SPELLINGS,
    Column,
    canonical_expr,
    describe_cell,
    is_missing,
    missing_counts,
    missing_expr,
    row_text,
)
from fcnet_cli.engine.data.csvformat import CsvFormat, check_one_column, csv_format, decimal_points
from fcnet_cli.engine.data.embeddings import NumEmbedding
from fcnet_cli.engine.data.encoding import (
    UnseenCategories,
    check_numeric,
    column_of,
    date_exprs,
    numeric_expr,
    refuse_missing,
    unseen_categories,
)
from fcnet_cli.engine.data.limits import check_columns, check_stream
from fcnet_cli.engine.data.normalization import Normalization
from fcnet_cli.errors import DataError

__all__ = ["FALSE_SPELLINGS", "NULL_VALUES", "TRUE_SPELLINGS", "Column", "Normalization",
           "Preprocessing", "Target", "UnseenCategories", "canonical_expr", "describe_cell",
           "encode_frame", "existing_file", "is_missing", "missing_counts",
           "read_table", "row_text"]

# cells read as missing in CSV files (an empty cell is the usual one)
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]
TableKind = Literal["csv", "parquet"]


def existing_file(name: str | Path) -> Path:
    """`name` as a Path, or a DataError if it is missing or a directory."""
    path = Path(name).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    if path.is_symlink() and not path.exists():
        raise DataError(f"{path}: a symbolic link to a missing file ({os.readlink(path)})")
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a regular file (a device, FIFO or socket); "
                        f"expected a data file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _check_header(path: Path, fmt: CsvFormat) -> None:
    """Polars renames duplicate CSV columns (a, a_duplicated_0); fcnet refuses them. A header
    that reads as one column holding another separator names the separator to set."""
    try:
        head = pl.read_csv(path, has_header=False, n_rows=1, infer_schema=False,
                           separator=fmt.separator)
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: file is empty (no header row)") from None
    names = [str(v).strip() for v in head.row(0)] if head.height else []
    check_columns(path, len(names))
    check_one_column(names, fmt.separator, str(path))
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise DataError(f"{path}: duplicate column name(s) {', '.join(map(repr, dup))} in the "
                        f"header; rename them")


def read_table(path: str | Path, kind: TableKind, separator: str | None = None, *,
               decimal_comma: bool = False) -> pl.DataFrame:
    """Read a whole CSV (also .csv.gz) or Parquet file.

    Args:
        separator: CSV separator; None detects it from the header line (engine.csvformat).
        decimal_comma: CSV numbers are written 3,5 (needs a separator other than ',').

    Raises:
        DataError: missing file, not a CSV/Parquet file, duplicate column names, a header
            that reads as one column holding another separator.
    """
    path = existing_file(path)
    try:
        if kind == "parquet":
            return _float32(pl.scan_parquet(path))
        fmt = csv_format(path, separator, decimal_comma=decimal_comma)
        check_stream(path)  # bytes and rows bounded before polars reads the file whole
        _check_header(path, fmt)
        try:
            frame = _float32(_scan_csv(path, fmt, 10_000))
        except pl.exceptions.ComputeError:
            # a text cell far down a numeric column: read every row's type, so the
            # column comes back as text and the caller can name the bad cell
            frame = _float32(_scan_csv(path, fmt, None))
        return decimal_points(frame) if fmt.decimal_comma else frame
    except DataError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as e:
        what = "a Parquet file" if kind == "parquet" else "a readable CSV file"
        raise DataError(f"{path}: not {what} ({_first_line(e)})") from None


def _scan_csv(path: Path, fmt: CsvFormat, infer_rows: int | None) -> pl.LazyFrame:
    return pl.scan_csv(path, null_values=NULL_VALUES, infer_schema_length=infer_rows,
                       separator=fmt.separator, decimal_comma=fmt.decimal_comma)


def _float32(lf: pl.LazyFrame) -> pl.DataFrame:
    """Collect with float columns as float32 (what the model reads), chunk by chunk: the
    table never exists as float64, which halves the peak memory of a numeric file."""
    return lf.with_columns(cs.float().cast(pl.Float32)).collect(engine="streaming")


SELECT_BLOCK = 256  # model inputs computed per query when a table is encoded

# ----------------------------------------------------------------------------- preprocessing


@dataclass
class Target:
    """What the model predicts: class names, or regression targets with their scaling."""

    task: Literal["classification", "regression"]
    columns: list[str]  # table column(s) read as the target ([] for bundled/NPZ sets)
    classes: list[str] = field(default_factory=list)  # classification: index = label
    mean: list[float] = field(default_factory=list)  # regression: per target, training split
    std: list[float] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Output names: the classes, or the regression targets."""
        return list(self.classes) if self.task == "classification" else list(self.columns)

    def unstandardize(self, y: np.ndarray) -> np.ndarray:
        """Regression outputs (n, T) in standard units -> the target's own units."""
        return y * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)


@dataclass
class Preprocessing:
    """Everything fitted on the training split that turns a table into model inputs."""

    columns: list[Column]
    normalization: Normalization
    target: Target
    input_divisor: float = 1.0  # every raw value is divided by it first (255 for image pixels)
    missing: str = "error"
    unknown_categories: str = "ignore"  # unseen category: "ignore" (all zeros) or "error"
    embedding: NumEmbedding | None = None  # model.num_embeddings, after the normalization

    @property
    def feature_names(self) -> list[str]:
        """Raw input columns, in the order the model expects them."""
        return [c.name for c in self.columns]

    @property
    def input_names(self) -> list[str]:
        """One name per model input (one-hot and indicator columns expanded)."""
        return [n for c in self.columns for n in c.input_names()]

    @property
    def in_features(self) -> int:
        """Encoded inputs (`input_names`), the normalization's width."""
        return int(self.normalization.shift.numel())

    @property
    def network_inputs(self) -> int:
        """The network's input width: `in_features`, grown by the numerical embedding."""
        return self.in_features if self.embedding is None else self.embedding.out_features

    def encode(self, frame: pl.DataFrame, source: str = "input", first_row: int = 1,
               ) -> tuple[np.ndarray, UnseenCategories]:
        """Unnormalized model inputs (n, in_features) float32 and unseen-category counts
        (a dict column -> cells, with example values)."""
        return encode_frame(self, frame, source, first_row)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for meta.json."""
        d = {"format": 1, "missing": self.missing, "input_divisor": self.input_divisor,
             "unknown_categories": self.unknown_categories,
             "columns": [vars(c) for c in self.columns],
             "normalization": self.normalization.to_json(), "target": vars(self.target)}
        return d if self.embedding is None else d | {"embedding": self.embedding.to_json()}

    @classmethod
    def from_json(cls, d: Any) -> Preprocessing:
        """Rebuild from `to_json` output; DataError if it is not well formed."""
        try:
            cols = [Column(**c) for c in d["columns"]]
            target = Target(**d["target"])
            prep = cls(cols, Normalization.from_json(d["normalization"]), target,
                       float(d["input_divisor"]), str(d["missing"]),
                       str(d.get("unknown_categories", "ignore")),
                       _embedding(d.get("embedding")))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"preprocessing is not well formed ({_first_line(e)})") from None
        for col in prep.columns:
            if col.kind not in ("numeric", "categorical", "date") or col.form not in FORMS \
                    or (col.kind == "date" and col.origin is None):
                raise DataError(f"preprocessing of column '{col.name}' is not well formed "
                                f"(kind {col.kind!r}, form {col.form!r})")
        if len(prep.input_names) != prep.in_features:
            raise DataError(f"preprocessing has {len(prep.input_names)} inputs but its "
                            f"normalization has {prep.in_features}")
        if prep.embedding is not None and prep.embedding.in_features != prep.in_features:
            raise DataError(f"preprocessing has {prep.in_features} inputs but its embedding "
                            f"expects {prep.embedding.in_features}")
        return prep

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Preprocessing:
        """From a checkpoint's meta.json (a DataError if it has no usable preprocessing)."""
        if "preprocessing" not in meta:
            raise DataError("checkpoint has no preprocessing (saved by an older fcnet)")
        return cls.from_json(meta["preprocessing"])

    def check_columns(self, frame: pl.DataFrame, source: str) -> None:
        """DataError naming the first expected column the table lacks (did-you-mean)."""
        have = set(frame.columns)
        for name in self.feature_names:
            if name not in have:
                hint = difflib.get_close_matches(name, frame.columns, n=1)
                tail = f"; did you mean '{hint[0]}'?" if hint else ""
                raise DataError(f"{source}: no column '{name}' (the model expects "
                                f"{len(self.feature_names)} columns: "
                                f"{_short_list(self.feature_names)}){tail}")


def _embedding(d: Any) -> NumEmbedding | None:
    """The stored numerical embedding; None for checkpoints without one."""
    return None if d is None else NumEmbedding.from_json(d)


def _short_list(names: list[str], n: int = 8) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", … ({len(names) - n} more)" if len(names) > n else "")


# ----------------------------------------------------------------------------- encoding


def encode_frame(prep: Preprocessing, frame: pl.DataFrame, source: str = "input",
                 first_row: int = 1, *, lines: bool = False, unknown: str | None = None,
                 ) -> tuple[np.ndarray, UnseenCategories]:
    """Unnormalized model inputs (n, in_features) float32 and the unseen categories.

    Args:
        unknown: ``ignore`` or ``error`` for unseen categories; default the preprocessing's
            ``unknown_categories``.
    """
    prep.check_columns(frame, source)
    holes = missing_counts(frame, [c.name for c in prep.columns if c.fill is None])
    exprs: list[pl.Expr] = []
    texts: dict[str, pl.Expr] = {}  # categorical column -> its canonical text
    schema = frame.schema  # once: building it costs O(columns)
    for col in prep.columns:
        dtype = schema[col.name]
        if holes.get(col.name):
            refuse_missing(frame, col, source, first_row, lines=lines)
        if col.kind == "numeric":
            check_numeric(frame[col.name], col, source, first_row, lines=lines)
            exprs.append(numeric_expr(col, dtype).truediv(prep.input_divisor).cast(pl.Float32)
                         .alias(col.name))
        elif col.kind == "date":
            exprs += date_exprs(frame, col, source, first_row, lines=lines)
        else:
            text = canonical_expr(col, dtype)
            if col.fill is not None:
                text = text.fill_null(str(col.fill))
            texts[col.name] = text
            exprs += [(text == c).fill_null(False).cast(pl.Float32).alias(f"{col.name}={c}")
                      for c in col.categories]
        if col.indicator:
            exprs.append(missing_expr(col.name, dtype).cast(pl.Float32)
                         .alias(f"{col.name}_missing"))
    unseen = unseen_categories(prep.columns, frame, texts, source, first_row, lines=lines,
                               unknown=unknown or prep.unknown_categories)
    # column by column into one C-order array: peak memory is the table plus x, not
    # the table plus a float32 copy of it plus x
    x = np.empty((frame.height, len(exprs)), dtype=np.float32)  # (n, in_features)
    # a select on a wide frame costs O(its columns): in blocks, so a table stays linear
    for j0 in range(0, len(exprs), SELECT_BLOCK):
        block = frame.select(exprs[j0:j0 + SELECT_BLOCK])
        for j, s in enumerate(block.iter_columns(), start=j0):
            x[:, j] = s.to_numpy()
    if not np.isfinite(x).all():
        i, j = np.argwhere(~np.isfinite(x))[0]
        name = prep.columns[column_of(prep.columns, int(j))].name
        raise DataError(f"{source}: {row_text(int(i), first_row, lines=lines)}, column '{name}': "
                        f"{describe_cell(frame[name][int(i)])} is not a finite number "
                        f"(or is beyond float32's ±3.4e38)")
    return x, unseen

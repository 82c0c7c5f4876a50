"""The one seam between raw table rows and the model's input: column matching and encoding.

Everything that turns a user's frame into feature arrays goes through `FeatureSpec`: the
streaming predictor, `eval --data`, the Python API and export. The checkpoint stores its
fitted preprocessing (`engine.data.tables.Preprocessing`); CSV/Parquet/data-frame columns are
matched by the raw column names (`names`), and encoded by it: categories one-hot on their
canonical form, dates as numbers, imputation and missing indicators. The model's inputs after
encoding are `input_names`; the fitted normalization is the model's first layer.

Plain numpy arrays and NPZ `x` are matched by position. A model whose encoding changes the
columns (one-hot, dates, indicators) takes either its raw columns in `names` order (an object
array may hold text) or its encoded inputs (`input_names`); any other model takes its `names`
columns. Numeric inputs are divided by the input divisor here (image pixels), as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fcnet_cli.engine.data.load import Normalization
from fcnet_cli.engine.data.tables import Column, Preprocessing, Target, UnseenCategories
from fcnet_cli.errors import CheckpointError, DataError

__all__ = ["FeatureSpec"]


@dataclass(frozen=True)
class FeatureSpec:
    """What a checkpoint expects as input: its fitted preprocessing (engine.data.tables)."""

    prep: Preprocessing
    target: str  # the label column of the training table (ignored silently when present)

    @classmethod
    def from_meta(cls, meta: dict, where: str) -> FeatureSpec:
        """Read the spec from a checkpoint's meta.json (``where`` names it in errors)."""
        config_target = ((meta.get("config") or {}).get("data") or {}).get("target", "label")
        try:
            if "preprocessing" in meta:
                prep = Preprocessing.from_meta(meta)
            else:  # saved before preprocessing was stored: numeric columns, normalization
                prep = _legacy(meta)
        except DataError as e:
            raise CheckpointError(f"{where}: {e}") from None
        if prep.network_inputs != meta["in_features"]:
            raise CheckpointError(f"{where}: preprocessing has {prep.network_inputs} inputs, "
                                  f"in_features is {meta['in_features']}")
        columns = prep.target.columns
        target = columns[0] if columns else config_target
        return cls(prep, str(target if isinstance(target, str) else target[0]))

    @property
    def names(self) -> list[str]:
        """The raw input columns, in model order."""
        return self.prep.feature_names

    @property
    def normalization(self) -> Normalization:
        return self.prep.normalization

    @property
    def input_names(self) -> list[str]:
        """The columns the model (and an exported graph) takes, in order (one-hot expanded)."""
        return self.prep.input_names

    @property
    def n_features(self) -> int:
        return len(self.names)

    def read_dtypes(self) -> dict[str, pl.DataType]:
        """Dtypes to parse CSV columns with: numbers as float64 (as training), categories as
        text."""
        return {c.name: pl.Float64() if c.kind == "numeric" else pl.String()
                for c in self.prep.columns}

    def match(self, columns: list[str], source: str) -> list[str]:
        """Check a table's columns; return the unused ones (besides the label column).

        Raises:
            DataError: listing every feature column the table lacks.
        """
        present = set(columns)
        missing = [c for c in self.names if c not in present]
        if missing:
            raise DataError(f"{source}: missing feature column(s) {', '.join(missing)} "
                            f"(the model takes {self.n_features} columns by name)")
        used = set(self.names) | {self.target} | set(self.prep.target.columns)
        return [c for c in columns if c not in used]

    def encode(self, frame: pl.DataFrame, source: str, first_row: int = 0) -> np.ndarray:
        """Model input (N, in_features) float32, before normalization (the model applies it).

        Args:
            frame: a chunk holding at least the feature columns (the raw ones, by name).
            source: the file (or "data frame") named in errors.
            first_row: 0-based index of ``frame``'s first row in the whole table, for errors.

        Raises:
            DataError: a missing, non-numeric, NaN or infinite cell, naming its row and column;
                an unseen category under ``data.unknown_categories: error``.
        """
        return self.encode_counted(frame, source, first_row)[0]

    def encode_counted(self, frame: pl.DataFrame, source: str, first_row: int = 0
                       ) -> tuple[np.ndarray, UnseenCategories]:
        """`encode`, and the cells whose category training never saw (all zeros)."""
        self.match(frame.columns, source)
        x, unseen = self.prep.encode(frame, source, first_row + 1)
        return np.ascontiguousarray(x), unseen

    def encode_array(self, x: np.ndarray, source: str, first_row: int = 0) -> np.ndarray:
        """A positional (N, F) array (NPZ or numpy input): the raw columns in `names` order,
        or the encoded model inputs; checked for width and finiteness."""
        return self.encode_array_counted(x, source, first_row)[0]

    def encode_array_counted(self, x: np.ndarray, source: str, first_row: int = 0
                             ) -> tuple[np.ndarray, UnseenCategories]:
        """`encode_array`, and the cells whose category training never saw."""
        if x.ndim == 1:
            x = x.reshape(1, -1)
        x = x.reshape(len(x), -1)
        raw = self.names != self.input_names  # encoding changes the columns
        if raw and x.shape[1] == self.n_features:  # the raw columns, by position
            frame = pl.DataFrame([_series(n, x[:, j]) for j, n in enumerate(self.names)])
            return self.encode_counted(frame, source, first_row)
        if x.shape[1] != self.prep.in_features:
            what = (f"{self.n_features} raw columns ({_short(self.names)}) or its "
                    f"{self.prep.in_features} encoded inputs" if raw
                    else f"{self.n_features}: {_short(self.names)}")
            raise DataError(f"{source}: has {x.shape[1]} features per row, the model takes "
                            f"{what}; a data frame is matched by column name")
        if x.dtype.kind not in "biuf":
            raise DataError(f"{source}: features must be numeric (got dtype {x.dtype})")
        x32 = x.astype(np.float32)
        if self.prep.input_divisor != 1.0:  # image pixels: training divided them by 255
            x32 /= np.float32(self.prep.input_divisor)
        bad = ~np.isfinite(x32)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{source}: row {first_row + int(i) + 1}, feature {int(j)}: "
                            f"{_finite_problem(float(x[i, j]))}")
        return np.ascontiguousarray(x32), UnseenCategories()


def _short(names: list[str], n: int = 12) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names) - n} more)" if len(names) > n else "")


def _series(name: str, values: np.ndarray) -> pl.Series:
    """One column of a positional array; in an object array None and NaN are missing."""
    if values.dtype.kind != "O":
        return pl.Series(name, values)
    cells = [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
    try:
        return pl.Series(name, cells)
    except (TypeError, ValueError, pl.exceptions.PolarsError):  # mixed types: read as text
        return pl.Series(name, [None if v is None else str(v) for v in cells], pl.String)


def _finite_problem(v: float) -> str:
    if np.isfinite(v):
        return f"{v!r} is too large for float32"
    return f"{v!r} is not a finite number"


def _legacy(meta: dict) -> Preprocessing:
    """The preprocessing of a checkpoint saved before it was stored: numeric columns (named
    by ``feature_names`` if present, else x0, x1, ...), its normalization, its classes."""
    n = meta["in_features"]
    names = meta.get("feature_names") or [f"x{i}" for i in range(n)]
    if not isinstance(names, list) or len(names) != n:
        raise DataError(f"feature_names must list {n} column names")
    target = Target("classification", [], [str(c) for c in meta["classes"]])
    return Preprocessing([Column(str(c), "numeric") for c in names],
                         Normalization.from_json(meta["normalization"]), target)

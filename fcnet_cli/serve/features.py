"""The one seam between raw table rows and the model's input: column matching and encoding.

Everything that turns a user's frame into feature arrays goes through `FeatureSpec`: the
streaming predictor, `eval --data`, the Python API and export (which bakes `normalization`
into the graph). The checkpoint stores the feature column names and their order
(meta.json `feature_names`); CSV/Parquet/data-frame columns are matched by those names,
NPZ arrays and plain numpy arrays by width.

Today every feature is a numeric column: the graph input is the raw column values as float32
and the fitted normalization is applied inside the model (`FeatureSpec.normalization`), so an
exported graph takes raw features. Fitted categorical encodings, when the data pipeline adds
them, are applied here in `encode` and the graph takes the encoded columns, listed by
`input_names` (what the export sidecar records).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fcnet_cli.engine.data import Normalization
from fcnet_cli.errors import CheckpointError, DataError

__all__ = ["FeatureSpec"]


@dataclass(frozen=True)
class FeatureSpec:
    """What a checkpoint expects as input: named numeric columns, normalized inside the model."""

    names: tuple[str, ...]  # (F,) raw input columns, in model order
    normalization: Normalization
    target: str  # the label column of the training data (ignored silently when present)

    @classmethod
    def from_meta(cls, meta: dict, where: str) -> FeatureSpec:
        """Read the spec from a checkpoint's meta.json (``where`` names it in errors)."""
        n = meta["in_features"]
        try:
            norm = Normalization.from_json(meta["normalization"])
        except DataError as e:
            raise CheckpointError(f"{where}: {e}") from None
        if norm.shift.numel() != n:
            raise CheckpointError(f"{where}: normalization has {norm.shift.numel()} features, "
                                  f"in_features is {n}")
        # checkpoints written before feature names were stored: positional names
        names = meta.get("feature_names") or [f"x{i}" for i in range(n)]
        if (not isinstance(names, list) or len(names) != n
                or not all(isinstance(c, str) for c in names) or len(set(names)) != n):
            raise CheckpointError(f"{where}: feature_names must list {n} distinct column names")
        target = ((meta.get("config") or {}).get("data") or {}).get("target", "label")
        return cls(tuple(names), norm, str(target))

    @property
    def input_names(self) -> list[str]:
        """The columns the model (and an exported graph) takes, in order."""
        return list(self.names)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def read_dtypes(self) -> dict[str, pl.DataType]:
        """Dtypes to parse the feature columns with (float64, as training parsed them)."""
        return {c: pl.Float64() for c in self.names}

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
        used = set(self.names) | {self.target}
        return [c for c in columns if c not in used]

    def encode(self, frame: pl.DataFrame, source: str, first_row: int = 0) -> np.ndarray:
        """Feature columns of ``frame`` as the model input (N, F) float32, checked finite.

        Args:
            frame: a chunk holding at least the feature columns (numeric or numeric text).
            source: the file (or "data frame") named in errors.
            first_row: 0-based index of ``frame``'s first row in the whole table, for errors.

        Raises:
            DataError: a missing, non-numeric, NaN or infinite cell, naming its row and column.
        """
        self.match(frame.columns, source)
        cols = []
        for name in self.names:
            col = frame.get_column(name)
            if not col.dtype.is_numeric():
                col = _parse_numbers(col, name, source, first_row)
            if col.null_count():
                row = int(col.is_null().arg_max() or 0)
                raise DataError(f"{source}: row {first_row + row + 1}, column '{name}': "
                                f"missing value")
            cols.append(col)
        frame = pl.DataFrame(cols)
        # parsed as float64 (like training), rounded to float32 like the training tensors
        x32 = frame.select(pl.col(self.names).cast(pl.Float32)).to_numpy()  # (N, F)
        bad = ~np.isfinite(x32)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            value = float(frame.get_column(self.names[j])[int(i)])
            raise DataError(f"{source}: row {first_row + int(i) + 1}, column "
                            f"'{self.names[j]}': {_finite_problem(value)}")
        return np.ascontiguousarray(x32)

    def encode_array(self, x: np.ndarray, source: str, first_row: int = 0) -> np.ndarray:
        """A positional (N, F) array (NPZ or numpy input), checked for width and finiteness."""
        if x.ndim == 1:
            x = x.reshape(1, -1)
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.n_features:
            raise DataError(f"{source}: has {x.shape[1]} features per row, the model takes "
                            f"{self.n_features}")
        if x.dtype.kind not in "biuf":
            raise DataError(f"{source}: features must be numeric (got dtype {x.dtype})")
        x32 = x.astype(np.float32)
        bad = ~np.isfinite(x32)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{source}: row {first_row + int(i) + 1}, feature {int(j)}: "
                            f"{_finite_problem(float(x[i, j]))}")
        return np.ascontiguousarray(x32)


def _finite_problem(v: float) -> str:
    if np.isfinite(v):
        return f"{v!r} is too large for float32"
    return f"{v!r} is not a finite number"


def _parse_numbers(col: pl.Series, name: str, source: str, first_row: int) -> pl.Series:
    """Numeric text (a frame's string column) as float64; raise at the first other cell."""
    text = col.cast(pl.String, strict=False)
    parsed = text.str.strip_chars().cast(pl.Float64, strict=False)
    bad = parsed.is_null() & text.is_not_null() & (text.str.strip_chars() != "")
    if bad.any():
        row = int(bad.arg_max() or 0)
        raise DataError(f"{source}: row {first_row + row + 1}, column '{name}': "
                        f"{text[row]!r} is not a number")
    if text.is_null().all() and col.null_count() != len(col):
        raise DataError(f"{source}: column '{name}' has type {col.dtype}, expected numbers")
    return parsed

"""Small tables that look like a user's own data, and a tiny `fcnet train` on each.

Shared by the tests of the whole path (train → predict → eval --data → load_model): text
columns with missing cells, integer-coded categories, a `True`/`False` column, a date column,
unicode column names and a UTF-8 byte-order mark. Every table is built from a seed, so a test
can ask for more rows of the same kind (a holdout, new rows) without the training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from fcnet_cli.cli import app

__all__ = ["CARS", "MESSY", "Messy", "Run", "cars", "dated", "passengers", "penguins",
           "train_run", "unicode_bom", "write_csv"]


def penguins(n: int = 90, seed: int = 0) -> pl.DataFrame:
    """Three species; `island` and `sex` text with empty cells, `bill_length_mm` with holes."""
    rng = np.random.default_rng(seed)
    species = rng.integers(0, 3, n)
    island = np.array(["Biscoe", "Dream", "Torgersen"])[(species + rng.integers(0, 2, n)) % 3]
    bill = 38.0 + 5.0 * species + rng.normal(0, 1.5, n)
    flipper = (190 + 10 * species + rng.integers(-5, 6, n)).astype(np.int64)
    sex = np.array(["male", "female"])[rng.integers(0, 2, n)].astype(object)
    island = island.astype(object)
    bill_cells: list[float | None] = [round(float(v), 1) for v in bill]
    for i in range(3, n, 17):  # holes in three columns
        island[i] = None
        bill_cells[(i + 5) % n] = None
        sex[(i + 9) % n] = None
    return pl.DataFrame({
        "species": np.array(["Adelie", "Chinstrap", "Gentoo"])[species].tolist(),
        "island": island.tolist(), "bill_length_mm": bill_cells,
        "flipper_length_mm": flipper.tolist(), "sex": sex.tolist()})


def passengers(n: int = 100, seed: int = 0) -> pl.DataFrame:
    """`pclass` 1/2/3 (a category written as a number), `alone` True/False, 0/1 target."""
    rng = np.random.default_rng(seed)
    pclass = rng.integers(1, 4, n)
    alone = rng.integers(0, 2, n).astype(bool)
    fare = np.round(80.0 / pclass + rng.normal(0, 5, n), 2)
    sex = rng.integers(0, 2, n)
    score = (3 - pclass) + 1.5 * sex - 1.0 * alone + rng.normal(0, 0.5, n)
    return pl.DataFrame({"pclass": pclass.tolist(), "alone": alone.tolist(), "fare": fare.tolist(),
                         "sex": np.array(["male", "female"])[sex].tolist(),
                         "survived": (score > 1.25).astype(np.int64).tolist()})


def dated(n: int = 100, seed: int = 0, start: str = "2020-01-01") -> pl.DataFrame:
    """`day` an ISO date (text in CSV), `amount` a number, `label` hi/lo; one empty date."""
    rng = np.random.default_rng(seed)
    days = np.datetime64(start) + rng.integers(0, 365, n)
    amount = np.round(rng.normal(10, 3, n), 2)
    label = np.where(amount + (days.astype("datetime64[M]").astype(int) % 12) / 3 > 12, "hi", "lo")
    cells: list[str | None] = [str(d) for d in days]
    cells[n // 2] = None
    return pl.DataFrame({"day": cells, "amount": amount.tolist(), "label": label.tolist()})


def unicode_bom(n: int = 80, seed: int = 0) -> pl.DataFrame:
    """Unicode column names and categories (written with a byte-order mark by `MESSY`)."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 3, n)
    size = np.round(150 + 10 * colour + rng.normal(0, 4, n), 1)
    return pl.DataFrame({"größe_cm": size.tolist(),
                         "farbe": np.array(["rot", "grün", "blau"])[colour].tolist(),
                         "klasse": np.array(["ja", "nein"])[(colour > 0).astype(int)].tolist()})


def cars(n: int = 100, seed: int = 0) -> pl.DataFrame:
    """Regression: `mpg` from `origin` (text), `year` (an ISO date) and `horsepower` (holes)."""
    rng = np.random.default_rng(seed)
    origin = rng.integers(0, 3, n)
    year = rng.integers(1970, 1983, n)
    hp = np.round(rng.normal(100, 25, n), 0)
    mpg = 20 + 4 * origin + 0.6 * (year - 1970) - 0.05 * (hp - 100) + rng.normal(0, 1, n)
    hp_cells: list[float | None] = hp.tolist()
    for i in range(4, n, 23):
        hp_cells[i] = None
    return pl.DataFrame({"origin": np.array(["usa", "europe", "japan"])[origin].tolist(),
                         "year": [f"{y}-01-01" for y in year], "horsepower": hp_cells,
                         "mpg": np.round(mpg, 1).tolist()})


def write_csv(frame: pl.DataFrame, path: Path, bom: bool = False) -> Path:
    """Write ``frame`` as CSV (empty cells for missing), optionally with a UTF-8 BOM."""
    text = frame.write_csv()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@dataclass(frozen=True)
class Messy:
    """One kind of table: how to build it, its target and its `data:` options."""

    name: str
    build: object  # (n, seed) -> pl.DataFrame
    target: str
    data: str  # extra `data:` lines (YAML flow mapping entries)
    bom: bool = False
    unseen: tuple[str, str] = ("", "")  # (column, a category training never saw)
    top: str = ""  # top-level experiment lines, e.g. "task: regression"

    def frame(self, n: int, seed: int) -> pl.DataFrame:
        return self.build(n, seed)  # type: ignore[operator, no-any-return]


MESSY = {
    "penguins": Messy("penguins", penguins, "species",
                      "missing: median, missing_indicator: true", unseen=("island", "Atlantis")),
    "passengers": Messy("passengers", passengers, "survived", "categorical: [pclass]",
                        unseen=("pclass", "4")),
    "dated": Messy("dated", dated, "label", "missing: median"),
    "unicode": Messy("unicode", unicode_bom, "klasse", "", bom=True, unseen=("farbe", "gelb")),
}


# regression, kept apart from MESSY (whose tests are about classes)
CARS = Messy("cars", cars, "mpg", "missing: median", unseen=("origin", "mars"),
             top="task: regression\n")


@dataclass(frozen=True)
class Run:
    """A trained run on a messy table."""

    kind: Messy
    run_dir: Path  # runs/<name>/<run-id>
    csv: Path  # the training file


def train_run(root: Path, kind: Messy, frame: pl.DataFrame | None = None, epochs: int = 2,
              extra: str = "", model: str = "hidden: [8]") -> Run:
    """`fcnet train` on ``kind`` (``frame``, default its 90-ish seeded rows) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    frame = kind.frame(100, 0) if frame is None else frame
    csv = write_csv(frame, root / f"{kind.name}.csv", bom=kind.bom)
    data = f"dataset: csv, path: {csv.as_posix()!r}, target: {kind.target}"
    data += f", {kind.data}" if kind.data else ""
    exp = root / f"{kind.name}.yaml"
    exp.write_text(f"{kind.top}data: {{{data}}}\n"
                   f"model: {{{model}}}\n"
                   "optimizer: {name: adam, lr: 0.02}\n"
                   f"training: {{epochs: {epochs}, batch_size: 16, device: cpu}}\n"
                   f"{extra}"
                   f"output: {{dir: {(root / 'runs').as_posix()!r}, name: {kind.name}}}\n",
                   encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "-q", str(exp)])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])  # `-q` prints the run directory
    assert (run_dir / "checkpoints" / "best").is_dir(), result.output
    return Run(kind, run_dir, csv)

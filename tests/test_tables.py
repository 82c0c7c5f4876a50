"""Tables through polars: CSV, .csv.gz, Parquet; column selection, one-hot categories,
missing values, the stored preprocessing and the streaming reader."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from fcnet_cli.config import DataConfig
from fcnet_cli.engine.data.load import DataSplits, load_data
from fcnet_cli.engine.data.reader import open_table
from fcnet_cli.engine.data.tables import Preprocessing, read_table
from fcnet_cli.errors import DataError


def make_frame(n: int = 90, seed: int = 0) -> pl.DataFrame:
    """Numeric a and b, a text colour, a boolean flag, an id and a string label."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "id": [f"row{i}" for i in range(n)],
        "a": rng.normal(size=n).round(3),
        "color": [["red", "green", "blue"][i % 3] for i in range(n)],
        "flag": [bool(i % 2) for i in range(n)],
        "b": (np.arange(n) % 5).astype(float),
        "label": [["x", "y"][i % 2] for i in range(n)],
    })


def write(frame: pl.DataFrame, path: Path) -> Path:
    if path.name.endswith(".parquet"):
        frame.write_parquet(path)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(frame.write_csv())
    else:
        frame.write_csv(path)
    return path


def cfg(path: Path, **kw: Any) -> DataConfig:
    kind = "parquet" if path.name.endswith(".parquet") else "csv"
    return DataConfig.model_validate({"dataset": kind, "path": str(path), "drop": ["id"], **kw})


def all_x(s: DataSplits) -> torch.Tensor:
    return torch.cat([s.x_train, s.x_val, s.x_test])


def normalized(prep: Preprocessing, frame: pl.DataFrame) -> torch.Tensor:
    """The model inputs a table gives: `prep.encode`, normalized by `prep.normalization`."""
    return prep.normalization.apply_(torch.from_numpy(prep.encode(frame)[0]))


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.parquet"])
def test_formats_give_the_same_splits(tmp_path: Path, name: str) -> None:
    frame = make_frame()
    ref = load_data(cfg(write(frame, tmp_path / "ref.csv")))
    got = load_data(cfg(write(frame, tmp_path / name)))
    assert got.preprocessing.feature_names == ["a", "color", "flag", "b"]
    assert got.preprocessing.input_names == ["a", "color=blue", "color=green", "color=red",
                                             "flag=false", "flag=true", "b"]
    assert got.classes == ["x", "y"]
    torch.testing.assert_close(got.x_train, ref.x_train)
    assert torch.equal(got.y_test, ref.y_test)


def test_one_hot_columns_match_the_cells(tmp_path: Path) -> None:
    frame = make_frame().with_columns(pl.Series("row", np.arange(90.0)))
    s = load_data(cfg(write(frame, tmp_path / "d.csv"), normalize="none",
                      categorical=["b"]))
    names = s.preprocessing.input_names
    # whole-number categories are named as integers, however the file wrote them
    assert names[-1] == "row" and "b=0" in names and "b=4" in names
    x = all_x(s)
    rows = x[:, -1].long()  # feature `row` is the row number
    colour = np.array(frame["color"])[rows.numpy()]
    for c in ("red", "green", "blue"):
        assert torch.equal(x[:, names.index(f"color={c}")],
                           torch.tensor(colour == c, dtype=torch.float32))
    assert torch.all(x[:, [i for i, n in enumerate(names) if n.startswith("b=")]].sum(1) == 1)


def test_features_and_drop_select_by_name(tmp_path: Path) -> None:
    p = write(make_frame(), tmp_path / "d.csv")
    s = load_data(cfg(p, features=["b", "a"]))
    assert s.preprocessing.feature_names == ["b", "a"] and s.n_features == 2
    s = load_data(cfg(p, drop=["id", "color", "flag"]))
    assert s.preprocessing.feature_names == ["a", "b"]


def _with_holes(n: int = 90) -> pl.DataFrame:
    frame = make_frame(n)
    a = frame["a"].to_list()
    colours = frame["color"].to_list()
    for i in range(0, n, 7):
        a[i] = None
    for i in range(3, n, 11):
        colours[i] = None
    return frame.with_columns(pl.Series("a", a), pl.Series("color", colours))


@pytest.mark.parametrize("how", ["mean", "median", "most_frequent"])
def test_imputation_fitted_on_training_rows(tmp_path: Path, how: str) -> None:
    frame = _with_holes().with_columns(pl.Series("row", np.arange(90.0)))
    s = load_data(cfg(write(frame, tmp_path / "d.csv"), normalize="none", missing=how,
                      missing_indicator=True))
    names = s.preprocessing.input_names
    assert "a_missing" in names and "color_missing" in names
    rows = s.x_train[:, names.index("row")].long().numpy()
    a = np.array(frame["a"].to_list(), dtype=float)[rows]
    present = a[~np.isnan(a)]
    want = {"mean": present.mean(), "median": np.median(present),
            "most_frequent": min(v for v in present if (present == v).sum()
                                 == max((present == u).sum() for u in present))}[how]
    col = s.preprocessing.columns[0]
    assert col.name == "a" and col.fill == pytest.approx(want)
    filled = s.x_train[:, names.index("a")].numpy()
    assert np.allclose(filled[np.isnan(a)], want, atol=1e-3)
    assert np.array_equal(s.x_train[:, names.index("a_missing")].numpy(), np.isnan(a))
    colour_col = s.preprocessing.columns[1]
    assert colour_col.fill in ("red", "green", "blue")  # text: the most frequent category


def test_missing_error_counts_per_column(tmp_path: Path) -> None:
    p = write(_with_holes(), tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"missing values in 2 column\(s\): 'a' 13 "
                                        r"\(rows 1, 8, 15, …\); 'color' 8 \(rows 4, 15, 26, …\)"):
        load_data(cfg(p))


def test_unseen_category_at_eval_is_zeros_and_counted(tmp_path: Path) -> None:
    frame = make_frame()
    s = load_data(cfg(write(frame, tmp_path / "d.csv")))
    prep = Preprocessing.from_json(json.loads(json.dumps(s.preprocessing.to_json())))
    new = frame.head(4).with_columns(pl.Series("color", ["red", "purple", "purple", "blue"]))
    raw, unseen = prep.encode(new.select(["label", "b", "flag", "color", "a"]))
    assert unseen == {"color": 2}
    onehot = [i for i, n in enumerate(prep.input_names) if n.startswith("color=")]
    assert raw[1, onehot].tolist() == [0.0, 0.0, 0.0] and raw[0, onehot].sum() == 1
    assert raw.dtype == np.float32 and raw.shape == (4, prep.in_features)


def test_encode_reproduces_training_inputs(tmp_path: Path) -> None:
    frame = make_frame().with_columns(pl.Series("row", np.arange(90)))
    s = load_data(cfg(write(frame, tmp_path / "d.parquet")))
    prep = Preprocessing.from_meta({"preprocessing": s.preprocessing.to_json()})
    shuffled = frame.select(list(reversed(frame.columns)))  # order by name, not position
    x = normalized(prep, shuffled)
    rows = torch.from_numpy(np.array(frame["row"]))
    want = all_x(s)
    order = torch.argsort(want[:, prep.input_names.index("row")])
    torch.testing.assert_close(x[torch.argsort(rows)], want[order])


def test_validation_rows_with_new_categories_give_a_notice(tmp_path: Path) -> None:
    frame = make_frame(120)
    colours = frame["color"].to_list()
    colours[5] = "violet"  # one row: at most in one split
    s = load_data(cfg(write(frame.with_columns(pl.Series("color", colours)), tmp_path / "d.csv"),
                      split_seed=1))
    in_train = "color=violet" in s.preprocessing.input_names
    unseen = [n for n in s.notices if "unseen" in n]  # (flag equals the label: a leak notice)
    assert bool(unseen) != in_train
    if unseen:
        assert "1 validation/test cell(s) hold a category unseen in training" in unseen[0]


def test_open_table_streams_in_file_order(tmp_path: Path) -> None:
    frame = make_frame(1000)
    for name in ("d.csv", "d.parquet"):
        p = write(frame, tmp_path / name)
        table = open_table(p)
        chunks = list(table.frames(["id"], {}, batch_rows=128))  # text: as written
        assert len(chunks) > 1
        starts = [0, *itertools.accumulate(c.height for _, c in chunks)][:-1]
        assert [s for s, _ in chunks] == starts  # each chunk says where it starts
        assert pl.concat([c for _, c in chunks])["id"].to_list() == frame["id"].to_list()


def test_regression_targets_standardized_on_train(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"x": rng.normal(size=200), "u": rng.normal(size=200) * 5 + 10,
                          "v": rng.normal(size=200)})
    s = load_data(cfg(write(frame, tmp_path / "d.csv"), target=["u", "v"], drop=[]),
                  task="regression")
    t = s.preprocessing.target
    assert t.task == "regression" and t.columns == ["u", "v"] and s.n_outputs == 2
    assert s.y_train.shape == (len(s.x_train), 2)
    torch.testing.assert_close(s.y_train.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    assert t.mean[0] == pytest.approx(10, abs=1.5) and t.std[0] == pytest.approx(5, rel=0.2)


def test_float_target_asks_for_regression(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": np.arange(100.0), "label": np.linspace(0, 1, 100)})
    with pytest.raises(DataError, match=r"target 'label' holds 100 distinct numbers; set "
                                        r"task: regression"):
        load_data(cfg(write(frame, tmp_path / "d.csv"), drop=[]))


def test_read_table_refuses_duplicates_and_junk(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("a,a,label\n1,2,x\n")
    with pytest.raises(DataError, match=r"duplicate column name\(s\) 'a'"):
        read_table(p, "csv")
    q = tmp_path / "d.parquet"
    q.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"d\.parquet: not a Parquet file"):
        read_table(q, "parquet")


def test_explicit_classification_of_fractional_labels(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": np.arange(60.0), "label": [0.5, 1.0, 2.5] * 20})
    s = load_data(cfg(write(frame, tmp_path / "d.csv"), drop=[]), task="classification")
    assert s.classes == ["0.5", "1", "2.5"]
    x, y = torch.cat([s.x_train, s.x_val]), torch.cat([s.y_train, s.y_val])
    assert s.n_classes == 3 and len(set(y.tolist())) == 3 and len(x) == len(y)


def test_bundled_sets_get_a_preprocessing_too() -> None:
    import sklearn.datasets

    s = load_data(DataConfig(dataset="iris"))
    prep = Preprocessing.from_meta({"preprocessing": s.preprocessing.to_json()})
    bunch = sklearn.datasets.load_iris()
    assert prep.feature_names == list(bunch.feature_names) and prep.target.classes == \
        list(bunch.target_names)
    frame = pl.DataFrame(bunch.data, schema=list(bunch.feature_names), orient="row")
    x = normalized(prep, frame)
    xs = sorted(all_x(s).tolist())
    assert torch.allclose(torch.tensor(sorted(x.tolist())), torch.tensor(xs), atol=1e-5)

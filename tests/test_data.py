"""Behavioural tests of fcnet_cli.engine.data.load: splits, normalization, file formats, errors.

Nothing here downloads: torchvision sets are written as tiny IDX files under tmp_path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnet_cli.config import DataConfig
from fcnet_cli.engine.data.load import DataSplits, Normalization, load_data
from fcnet_cli.errors import DataError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate(kw)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_data(cfg(dataset="digits"))


@pytest.fixture(scope="module")
def digits_raw() -> DataSplits:
    return load_data(cfg(dataset="digits", normalize="none"))


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def csv_cfg(path: Path, **kw) -> DataConfig:
    return cfg(dataset="csv", path=str(path), **kw)


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_and_dtypes(digits: DataSplits) -> None:
    assert digits.n_features == 64 and digits.n_classes == 10
    assert digits.classes == [str(i) for i in range(10)]
    for name in ("train", "val", "test"):
        x, y = digits.split(name)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.device.type == "cpu" and x.shape == (len(y), 64)


def test_digits_split_sizes_match_fractions(digits: DataSplits) -> None:
    n = 1797
    assert len(digits.y_test) == math.ceil(0.2 * n)
    assert len(digits.y_val) == math.ceil(0.2 * n)
    assert len(digits.y_train) + len(digits.y_val) + len(digits.y_test) == n


def test_every_class_in_every_split(digits: DataSplits) -> None:
    for name in ("train", "val", "test"):
        _, y = digits.split(name)
        assert set(y.tolist()) == set(range(10)), name


def test_same_config_same_split_other_seed_other_split() -> None:
    a, b = load_data(cfg(dataset="iris")), load_data(cfg(dataset="iris"))
    c = load_data(cfg(dataset="iris", split_seed=1))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_test, c.x_test)


def test_standard_fitted_on_train_only(digits: DataSplits, digits_raw: DataSplits) -> None:
    raw = digits_raw.x_train
    norm = digits.normalization
    assert norm.kind == "standard"
    torch.testing.assert_close(norm.shift, raw.mean(0), atol=1e-5, rtol=1e-5)
    varying = raw.std(0) > 0
    assert (~varying).any()  # digits has constant pixels: they must get scale 1, not 0
    assert torch.all(norm.scale[~varying] == 1)
    x = digits.x_train
    assert x.mean(0).abs().max() < 1e-4
    torch.testing.assert_close(x[:, varying].std(0, unbiased=False),
                               torch.ones(int(varying.sum())), atol=1e-4, rtol=1e-4)
    assert digits.x_val.mean(0).abs().max() > 1e-2  # val is transformed, not re-fitted
    assert torch.isfinite(digits.x_val).all()


def test_minmax_train_range_is_unit_interval() -> None:
    s = load_data(cfg(dataset="wine", normalize="minmax"))
    assert s.x_train.min().item() == pytest.approx(0.0, abs=1e-6)
    assert s.x_train.max().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(s.x_train.amin(0), torch.zeros(13), atol=1e-6, rtol=0)
    torch.testing.assert_close(s.x_train.amax(0), torch.ones(13), atol=1e-6, rtol=0)


def test_zero_test_fraction_gives_empty_test_split() -> None:
    s = load_data(cfg(dataset="iris", test_fraction=0.0))
    assert s.x_test.shape == (0, 4) and s.y_test.shape == (0,)
    assert len(s.y_train) + len(s.y_val) == 150


def test_to_moves_every_split(digits: DataSplits) -> None:
    moved = digits.to("cpu")
    assert moved.classes == digits.classes and torch.equal(moved.x_val, digits.x_val)
    with pytest.raises(ValueError, match="split"):
        digits.split("holdout")


# ----------------------------------------------------------------------------- normalization


def test_normalization_json_roundtrip(digits: DataSplits) -> None:
    norm = Normalization.from_json(digits.normalization.to_json())
    assert norm.kind == "standard"
    assert torch.equal(norm.shift, digits.normalization.shift)
    assert torch.equal(norm.scale, digits.normalization.scale)


@pytest.mark.parametrize("bad", [
    {"kind": "standard", "shift": [0.0]},
    {"kind": "zscore", "shift": [0.0], "scale": [1.0]},
    {"kind": "standard", "shift": [0.0, 1.0], "scale": [1.0]},
    {"kind": "standard", "shift": [0.0], "scale": [0.0]},
    {"kind": "standard", "shift": ["a"], "scale": [1.0]},
])
def test_normalization_from_json_rejects_malformed(bad: dict) -> None:
    with pytest.raises(DataError):
        Normalization.from_json(bad)


def test_given_normalization_is_used(digits_raw: DataSplits) -> None:
    norm = Normalization("standard", torch.full((64,), 5.0), torch.full((64,), 2.0))
    s = load_data(cfg(dataset="digits"), normalization=norm)
    assert s.normalization is norm
    torch.testing.assert_close(s.x_val, (digits_raw.x_val - 5) / 2)
    with pytest.raises(DataError, match="features"):
        load_data(cfg(dataset="iris"), normalization=norm)


# ----------------------------------------------------------------------------- CSV


def _rows(labels: list[str]) -> str:
    return "".join(f"{i},{i % 7 * 0.5},{lab}\n" for i, lab in enumerate(labels))


def test_csv_string_labels_sorted(tmp_path: Path) -> None:
    labels = ["setosa", "virginica", "versicolor"] * 10
    p = write_csv(tmp_path / "d.csv", "a,b,species\n" + _rows(labels))
    s = load_data(csv_cfg(p, target="species", normalize="none"))
    assert s.classes == ["setosa", "versicolor", "virginica"]
    assert s.n_features == 2
    # every row's label still matches its name: feature `a` is the row number
    for x, y in zip(s.x_train, s.y_train, strict=True):
        assert s.classes[int(y)] == labels[int(x[0])]


def test_csv_integer_labels_sort_numerically(tmp_path: Path) -> None:
    labels = ["10", "2", "7"] * 10
    p = write_csv(tmp_path / "d.csv", "a,label,b\n" +
                  "".join(f"{i},{lab},{i * 2}\n" for i, lab in enumerate(labels)))
    s = load_data(csv_cfg(p, normalize="none"))
    assert s.classes == ["2", "7", "10"]
    for x, y in zip(s.x_val, s.y_val, strict=True):
        assert s.classes[int(y)] == labels[int(x[0])]


def test_csv_missing_target_lists_columns(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "d.csv", "a,b,kind\n" + _rows(["x", "y"] * 10))
    with pytest.raises(DataError, match=r"'label'.*a, b, kind"):
        load_data(csv_cfg(p))


def test_csv_non_numeric_names_line_and_column(tmp_path: Path) -> None:
    text = "a,b,label\n" + _rows(["x", "y"] * 10)
    lines = text.splitlines()
    lines[4] = "3,oops,x"
    p = write_csv(tmp_path / "d.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d\.csv.*line 5.*column 'b'.*oops"):
        load_data(csv_cfg(p))


def test_csv_nan_is_missing_and_inf_is_named(tmp_path: Path) -> None:
    text = "a,b,label\n" + _rows(["x", "y"] * 10) + "1,nan,x\n"
    p = write_csv(tmp_path / "d.csv", text)
    with pytest.raises(DataError, match=r"d\.csv: missing values in 1 column\(s\): 'b' 1 "
                                        r"\(row 21\)"):
        load_data(csv_cfg(p))
    p.write_text(text.replace("1,nan,x", "2,inf,y"))
    with pytest.raises(DataError, match=r"row 21 \(line 22\), column 'b': inf is not a finite"):
        load_data(csv_cfg(p))


def test_csv_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_data(csv_cfg(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="is a directory"):
        load_data(csv_cfg(tmp_path))


def test_csv_header_only_is_empty(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "d.csv", "a,b,label\n")
    with pytest.raises(DataError, match=r"empty \(0 rows\)"):
        load_data(csv_cfg(p))
    p.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_data(csv_cfg(p))


def test_csv_too_few_rows_for_classes(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "d.csv", "a,b,label\n" + _rows(list("abcde") * 2))
    with pytest.raises(DataError, match=r"val split would get 2 of 10 rows for 5 classes"):
        load_data(csv_cfg(p))


def test_csv_short_row_names_the_empty_target(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,y\n")
    with pytest.raises(DataError, match=r"target 'label' is empty in 1 row \(row 2\)"):
        load_data(csv_cfg(p))


def test_csv_class_too_rare_for_stratified_split(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "d.csv", "a,b,label\n" + _rows(["x", "y"] * 20 + ["z"]))
    with pytest.raises(DataError, match=r"class 'z' has only 1 example"):
        load_data(csv_cfg(p))


# ----------------------------------------------------------------------------- NPZ


def test_npz_happy_path_flattens(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x=rng.normal(size=(60, 2, 3)), y=np.arange(60) % 3)
    s = load_data(cfg(dataset="npz", path=str(p)))
    assert s.n_features == 6 and s.classes == ["0", "1", "2"]
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 60


def test_npz_negative_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((30, 2)), y=np.arange(30) % 3 - 1)
    with pytest.raises(DataError, match="labels out of range"):
        load_data(cfg(dataset="npz", path=str(p)))


def test_npz_length_mismatch_and_missing_key(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((30, 2)), y=np.zeros(29, dtype=int))
    with pytest.raises(DataError, match="x has 30 rows but y has 29 labels"):
        load_data(cfg(dataset="npz", path=str(p)))
    np.savez(p, x=np.zeros((30, 2)))
    with pytest.raises(DataError, match="missing array.* y"):
        load_data(cfg(dataset="npz", path=str(p)))


def test_npz_rejects_pickles_and_junk(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.array([{"a": 1}] * 3, dtype=object), y=np.zeros(3, dtype=int))
    with pytest.raises(DataError, match="not a readable"):
        load_data(cfg(dataset="npz", path=str(p)))
    p.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="d.npz"):
        load_data(cfg(dataset="npz", path=str(p)))


# ----------------------------------------------------------------------------- MNIST (IDX files)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0x0000 0x08 (uint8) ndim, then big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, n_train: int = 200, n_test: int = 50) -> None:
    raw = root / "MNIST" / "raw"  # torchvision reads the unpacked raw files (no md5 check)
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_mnist_from_idx_files(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    s = load_data(cfg(dataset="mnist", root=str(tmp_path), normalize="none",
                      test_fraction=0.5))  # ignored: official test split
    assert s.n_features == 784 and s.n_classes == 10
    assert s.classes[0].startswith("0")
    assert len(s.y_test) == 50 and len(s.y_val) == 40 and len(s.y_train) == 160
    assert s.x_train.dtype == torch.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0 and s.x_train.max() > 0.99
    for name in ("train", "val", "test"):
        assert set(s.split(name)[1].tolist()) == set(range(10))


def test_mnist_missing_files_mention_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.download: true") as info:
        load_data(cfg(dataset="mnist", root=str(tmp_path / "nowhere")))
    assert "nowhere" in str(info.value) and "\n" not in str(info.value)

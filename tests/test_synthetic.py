"""The bundled 2-D data sets (moons, circles, spirals) and `fcnet plot RUN --boundary`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from typer.testing import CliRunner

from fcnet_cli.analysis.boundary import decision_regions
from fcnet_cli.cli import app
from fcnet_cli.config import DataConfig, validate_experiment
from fcnet_cli.engine.data.load import load_data
from fcnet_cli.engine.data.synthetic import make_spirals, synthetic
from fcnet_cli.engine.train.loop import train

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["moons", "circles", "spirals"])
def test_sets_are_2d_balanced_and_reproducible(name: str) -> None:
    cfg = DataConfig(dataset=name, samples=200)
    x, y, classes = synthetic(cfg)
    assert x.shape == (200, 2) and classes == ["0", "1"]
    assert np.bincount(y).tolist() == [100, 100]
    again, _, _ = synthetic(cfg)
    other, _, _ = synthetic(DataConfig(dataset=name, samples=200, split_seed=1))
    assert np.array_equal(x, again) and not np.allclose(x, other)
    splits = load_data(cfg)
    assert splits.n_features == 2 and len(splits.y_train) + len(splits.y_val) + \
        len(splits.y_test) == 200


def test_moons_and_circles_are_scikit_learns() -> None:
    x, y, _ = synthetic(DataConfig(dataset="moons", samples=100, noise=0.1, split_seed=3))
    xs, ys = sklearn.datasets.make_moons(100, noise=0.1, random_state=3)
    assert np.array_equal(x, xs) and np.array_equal(y, ys)
    x, _, _ = synthetic(DataConfig(dataset="circles", samples=100, noise=0.0))
    radii = np.sort(np.unique(np.round(np.hypot(x[:, 0], x[:, 1]), 6)))
    assert radii.tolist() == [0.5, 1.0]


def test_noise_free_spirals_are_two_arms_half_a_turn_apart() -> None:
    x, y = make_spirals(400, 0.0, np.random.default_rng(0))
    r = np.hypot(x[:, 0], x[:, 1])
    assert r.min() >= 0.1 - 1e-12 and r.max() <= 1.0 + 1e-12
    # on each arm the angle is a fixed function of the radius: 1.5 turns from r 0 to 1
    theta = np.arctan2(x[:, 1], x[:, 0])
    expected = r * 1.5 * 2 * np.pi + y * np.pi
    assert np.allclose(np.cos(theta - expected), 1.0, atol=1e-9)


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("moons")
    exp = validate_experiment({
        "data": {"dataset": "moons", "samples": 200}, "model": {"hidden": [16]},
        "optimizer": {"lr": 0.1, "momentum": 0.9},
        "training": {"epochs": 6, "batch_size": 16, "device": "cpu"},
        "output": {"dir": str(out), "name": "moons"}})
    result = train(exp)
    assert result.run_dir is not None
    return Path(result.run_dir)


def test_boundary_regions_are_probabilities_over_the_data_range(moons_run: Path) -> None:
    r = decision_regions(moons_run, resolution=40)
    assert r.xx.shape == (40, 40) and r.proba.shape == (40, 40, 2)
    assert np.allclose(r.proba.sum(-1), 1.0, atol=1e-5)
    pts = np.concatenate([r.train[0], r.val[0]])
    assert r.xx.min() < pts[:, 0].min() and r.xx.max() > pts[:, 0].max()
    assert r.yy.min() < pts[:, 1].min() and r.yy.max() > pts[:, 1].max()
    # the picture agrees with the network: points in the region of their class ≈ val accuracy
    gx, gy = r.xx[0], r.yy[:, 0]
    x, y = r.val
    i = np.abs(gy[None, :] - x[:, 1:2]).argmin(1)
    j = np.abs(gx[None, :] - x[:, 0:1]).argmin(1)
    agree = float((r.proba[i, j].argmax(-1) == y).mean())
    assert agree > 0.75


def test_plot_boundary_writes_a_png(moons_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", str(moons_run), "--boundary",
                                 "-o", str(tmp_path / "b.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").read_bytes().startswith(PNG)


def test_boundary_needs_two_features(tmp_path: Path) -> None:
    exp = validate_experiment({
        "data": {"dataset": "iris"}, "model": {"hidden": [4]},
        "training": {"epochs": 1, "device": "cpu"},
        "output": {"dir": str(tmp_path), "name": "iris"}})
    run = train(exp).run_dir
    assert run is not None
    result = runner.invoke(app, ["plot", run, "--boundary"])
    assert result.exit_code == 2, result.output
    assert "needs a run with 2 input features (this one has 4)" in result.output
    folder = runner.invoke(app, ["plot", str(tmp_path), "--boundary"])
    assert folder.exit_code == 2 and "give a run directory" in folder.output

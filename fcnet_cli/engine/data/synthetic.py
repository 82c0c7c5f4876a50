"""Bundled synthetic 2-D data sets for decision-boundary pictures: moons, circles, spirals.

Generated offline from a seed (`data.split_seed`), so one config always gives the same points.
Two classes, `data.samples` points split evenly between them, Gaussian noise of std
`data.noise` on each coordinate. Moons and circles are scikit-learn's `make_moons` /
`make_circles` (circles with the inner radius at half the outer one); spirals are two
interleaved Archimedean arms of 1.5 turns each, radius growing from 0.1 to 1.
"""

from __future__ import annotations

import math

import numpy as np

from fcnet_cli.config import DataConfig

__all__ = ["DEFAULT_NOISE", "make_spirals", "synthetic"]

DEFAULT_NOISE = {"moons": 0.2, "circles": 0.08, "spirals": 0.1}
SPIRAL_TURNS = 1.5


def make_spirals(n: int, noise: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: x (n, 2) float64, y (n,) in {0, 1}, classes as even as n allows."""
    y = np.arange(n) % 2  # (n,) alternate classes: exact halves
    r = rng.uniform(0.1, 1.0, n)  # (n,) radius grows linearly with the angle
    theta = r * SPIRAL_TURNS * 2 * math.pi + y * math.pi  # second arm rotated by half a turn
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return x + rng.normal(0.0, noise, x.shape), y.astype(np.int64)


def synthetic(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x (N, 2) float64, y (N,) int64, class names) of a synthetic data set."""
    noise = DEFAULT_NOISE[cfg.dataset] if cfg.noise is None else cfg.noise
    n, seed = cfg.samples, cfg.split_seed
    if cfg.dataset == "spirals":
        x, y = make_spirals(n, noise, np.random.default_rng(seed))
    else:
        import sklearn.datasets  # lazy: only these sets need it

        if cfg.dataset == "moons":
            x, y = sklearn.datasets.make_moons(n, noise=noise, random_state=seed)
        else:
            x, y = sklearn.datasets.make_circles(n, noise=noise, factor=0.5, random_state=seed)
    return np.asarray(x, np.float64), np.asarray(y, np.int64), ["0", "1"]

"""Decision regions of a 2-feature run: the picture of overfitting that no table gives.

`decision_regions` loads a run's `best` checkpoint, evaluates the network on a grid over the
data's range (in the data's own units: the stored normalization is applied to the grid), and
`draw_regions` shades each class's region with the train (filled) and validation (hollow)
points on top. `plot_boundary` writes one PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from fcnet_cli.analysis.compare import RunRecord
from fcnet_cli.analysis.plots import new_figure, save_figure
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import UsageError

__all__ = ["Regions", "check_two_features", "decision_regions", "draw_regions", "plot_boundary"]

MARGIN = 0.15  # of the data's range, on each side of the grid


@dataclass
class Regions:
    """A network's predictions on a grid, and the points it was trained and validated on."""

    xx: np.ndarray  # (H, W) first feature
    yy: np.ndarray  # (H, W) second feature
    proba: np.ndarray  # (H, W, C) predicted class probabilities
    train: tuple[np.ndarray, np.ndarray]  # x (N, 2) in the data's units, y (N,)
    val: tuple[np.ndarray, np.ndarray]
    features: tuple[str, str]


def check_two_features(run: RunRecord) -> None:
    """UsageError unless the run's network takes exactly 2 input features."""
    if run.in_features is None:
        raise UsageError(f"{run.path}: no checkpoint to draw decision regions from")
    if run.in_features != 2:
        raise UsageError(f"{run.path}: --boundary needs a run with 2 input features (this one "
                         f"has {run.in_features}); train on moons, circles, spirals or a "
                         "2-column table")


def decision_regions(run_dir: Path, resolution: int = 200, which: str = RunDir.BEST
                     ) -> Regions:
    """Predictions of the run's `best` (or `last`) checkpoint on a resolution² grid."""
    import torch

    from fcnet_cli.engine.data.load import Normalization, load_data
    from fcnet_cli.engine.model import build_mlp
    from fcnet_cli.engine.store.checkpoint import load_checkpoint

    ckpt = load_checkpoint(RunDir(run_dir).checkpoint(which))
    exp = ckpt.experiment()
    norm = Normalization.from_json(ckpt.meta["normalization"])
    data = load_data(exp.data, normalization=norm)
    scale, shift = norm.scale.numpy(), norm.shift.numpy()  # (2,) back to the data's units
    raw = {s: (data.split(s)[0].numpy() * scale + shift, data.split(s)[1].numpy())
           for s in ("train", "val")}
    pts = np.concatenate([raw["train"][0], raw["val"][0]])  # (N, 2)
    lo, hi = pts.min(0), pts.max(0)
    pad = (hi - lo) * MARGIN
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = np.meshgrid(gx, gy)  # (H, W)
    grid = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    model = build_mlp(exp.model, 2, int(ckpt.meta["n_classes"]))
    model.load_state_dict(ckpt.state_dict)
    model.eval()
    with torch.no_grad():
        proba = torch.softmax(model(norm.apply(grid)), -1).numpy()  # (H·W, C)
    names = ("x₁", "x₂")
    return Regions(xx, yy, proba.reshape(*xx.shape, -1), raw["train"], raw["val"], names)


def draw_regions(ax: Axes, r: Regions, title: str, *, points: bool = True) -> None:
    """Shade the regions (two classes: p(class 1) from blue to red, 0.5 contour in black)."""
    from matplotlib import colormaps

    C = r.proba.shape[-1]
    if C == 2:
        ax.contourf(r.xx, r.yy, r.proba[..., 1], levels=np.linspace(0, 1, 11), cmap="RdBu_r",
                    alpha=0.5, vmin=0, vmax=1)
        ax.contour(r.xx, r.yy, r.proba[..., 1], levels=[0.5], colors="black", linewidths=1)
        palette: list[Any] = ["#053061", "#67001f"]  # darker than the regions: points stand out
    else:
        cmap = colormaps["tab10"]
        ax.contourf(r.xx, r.yy, r.proba.argmax(-1), levels=np.arange(C + 1) - 0.5,
                    cmap=cmap, vmin=0, vmax=9, alpha=0.35)
        palette = [cmap(i) for i in range(C)]
    if points:
        for (x, y), hollow in ((r.train, False), (r.val, True)):
            colors = [palette[int(c) % len(palette)] for c in y]
            if hollow:
                ax.scatter(x[:, 0], x[:, 1], s=16, facecolors="none", edgecolors=colors,
                           linewidths=0.9)
            else:
                ax.scatter(x[:, 0], x[:, 1], s=14, c=colors, edgecolors="white", linewidths=0.4)
    ax.set_title(title, fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_boundary(run: RunRecord, out: str | Path, resolution: int = 200) -> Path:
    """One PNG: the run's decision regions with its train (filled) and val (hollow) points."""
    check_two_features(run)
    regions = decision_regions(run.path, resolution)
    fig, (ax,) = new_figure(1, 1, 6, 5.6)
    best = run.summary.get("best") or {}
    test = (run.summary.get("test") or {}).get("accuracy")
    acc = f"val acc {best.get('val_accuracy', float('nan')):.3f}" + (
        f", test acc {test:.3f}" if isinstance(test, float) else "")
    draw_regions(ax, regions, f"{run.summary.get('name', '')} · {run.path.name}: {acc}")
    fig.text(0.01, 0.005, "train: filled, validation: hollow", fontsize="small")
    return save_figure(fig, out)

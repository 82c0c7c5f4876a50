"""A small trained classifier on a named-column CSV, shared by the serve/predict/export tests."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.datasets import load_iris
from typer.testing import Result

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class Trained:
    run_dir: Path
    csv: Path  # the training table: FEATURES + label (string class names)
    frame: pl.DataFrame  # the same rows, plus an `id` column


def iris_frame() -> pl.DataFrame:
    bunch = load_iris()
    x = np.asarray(bunch.data, np.float64)
    cols = {name: x[:, j] for j, name in enumerate(FEATURES)}
    labels = [str(bunch.target_names[i]) for i in bunch.target]
    return pl.DataFrame({"id": [f"r{i:03d}" for i in range(len(x))], **cols, "label": labels})


_TRAINED: list[Trained] = []  # one training per test session, shared by the test modules


def train_iris(root: Path) -> Trained:
    """Train once per session (under the first caller's ``root``) and reuse that run."""
    if not _TRAINED:
        _TRAINED.append(_train(root))
    return _TRAINED[0]


def _train(root: Path) -> Trained:
    from fcnet_cli import load_experiment, train

    frame = iris_frame()
    csv = root / "iris.csv"
    frame.drop("id").write_csv(csv)
    exp_path = root / "iris.yaml"
    exp_path.write_text(
        f"data: {{dataset: csv, path: {csv.as_posix()}, normalize: standard}}\n"
        "model: {hidden: [16]}\n"
        "optimizer: {name: adam, lr: 0.02}\n"
        "training: {epochs: 25, batch_size: 16, device: cpu}\n"
        f"output: {{dir: {(root / 'runs').as_posix()}}}\n", encoding="utf-8")
    result = train(load_experiment(exp_path))
    assert result.run_dir is not None
    return Trained(Path(result.run_dir), csv, frame)


def usage_error(result: Result, *needles: str) -> str:
    """Exit 2, one `error:` line on stderr naming every needle, nothing on stdout."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err)
    return err[0]

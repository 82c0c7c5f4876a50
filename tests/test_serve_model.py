"""`load_model`: scikit-learn names, numpy / polars / pandas input, column matching."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from serve_data import FEATURES, Trained, train_iris

from fcnet_cli.errors import CheckpointError, DataError, UsageError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_iris(tmp_path_factory.mktemp("iris"))


def test_public_api_and_sklearn_attributes(trained: Trained) -> None:
    from fcnet_cli import load_model

    m = load_model(trained.run_dir)
    assert m.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert m.feature_names_in_.tolist() == FEATURES
    assert m.n_features_in_ == 4
    meta_dir = trained.run_dir / "checkpoints" / "best"
    assert load_model(meta_dir).sha256 == m.sha256


def test_numpy_polars_and_pandas_input_agree(trained: Trained) -> None:
    from fcnet_cli import load_model

    m = load_model(trained.run_dir)
    x = trained.frame.select(FEATURES).to_numpy()
    # reordered columns plus a string id and the label: matched by name, extras ignored
    frame = trained.frame.select(["label", "petal_width", "id", *FEATURES[:3]])
    p_numpy = m.predict_proba(x)
    assert p_numpy.shape == (150, 3) and p_numpy.dtype == np.float32
    np.testing.assert_array_equal(m.predict_proba(frame), p_numpy)
    np.testing.assert_array_equal(m.predict_proba(pd.DataFrame(frame.to_dict(as_series=False))),
                                  p_numpy)
    np.testing.assert_array_equal(m.predict_proba(torch.from_numpy(x)), p_numpy)
    labels = m.predict(frame)
    assert labels.tolist() == m.classes_[p_numpy.argmax(1)].tolist()
    assert (labels == trained.frame["label"].to_numpy()).mean() > 0.8  # it learned something


def test_predictions_follow_the_stored_normalization(trained: Trained) -> None:
    """The model is nn.Sequential(normalize, MLP): check it against a hand-built forward."""
    from fcnet_cli import load_model

    m = load_model(trained.run_dir)
    x = trained.frame.select(FEATURES).to_numpy().astype(np.float32)
    norm = m.checkpoint.meta["normalization"]
    z = (torch.from_numpy(x) - torch.tensor(norm["shift"])) / torch.tensor(norm["scale"])
    sd = m.checkpoint.state_dict
    h = torch.relu(z @ sd["0.weight"].T + sd["0.bias"])
    logits = h @ sd["3.weight"].T + sd["3.bias"]
    np.testing.assert_allclose(m.predict_proba(x), torch.softmax(logits, -1).numpy(), atol=1e-6)


def test_bad_input(trained: Trained, tmp_path: Path) -> None:
    from fcnet_cli import load_model

    m = load_model(trained.run_dir)
    with pytest.raises(DataError, match="missing feature column.s. petal_width"):
        m.predict(trained.frame.drop("petal_width"))
    with pytest.raises(DataError, match="has 3 features per row, the model takes 4"):
        m.predict(np.zeros((2, 3)))
    with pytest.raises(DataError, match="row 2, column 'sepal_width': 'x' is not a number"):
        m.predict(pd.DataFrame({**{c: ["1", "2"] for c in FEATURES}, "sepal_width": ["1", "x"]}))
    with pytest.raises(CheckpointError, match="no checkpoint in this directory"):
        load_model(tmp_path)


def test_regression_predicts_the_target_in_its_own_units(tmp_path: Path) -> None:
    import io

    import polars as pl
    from typer.testing import CliRunner

    from fcnet_cli import load_experiment, load_model, train
    from fcnet_cli.cli import app
    from fcnet_cli.serve.predict import raw_split

    exp = tmp_path / "reg.yaml"
    exp.write_text("data: {dataset: diabetes}\nmodel: {hidden: [8]}\n"
                   "training: {epochs: 2, device: cpu}\n"
                   f"output: {{dir: {(tmp_path / 'runs').as_posix()}}}\n", encoding="utf-8")
    run = train(load_experiment(exp)).run_dir
    assert run is not None
    m = load_model(run)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", run, "--split", "test"])
    assert result.exit_code == 0, result.output
    out = pl.read_csv(io.StringIO(result.stdout))
    assert out.columns == ["target"]
    x = raw_split(m, "test")
    scale = m.checkpoint.meta["preprocessing"]["target"]
    with torch.no_grad():
        standardized = m.module(torch.from_numpy(x)).numpy()[:, 0]
    expected = standardized * scale["std"][0] + scale["mean"][0]
    np.testing.assert_allclose(out["target"].to_numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(m.predict(x), expected, rtol=1e-5)
    assert runner.invoke(app, ["predict", run, "--split", "test", "--proba"]).exit_code == 2
    with pytest.raises(UsageError, match="regression model has no class probabilities"):
        m.predict_proba(x)

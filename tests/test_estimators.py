"""`FCNetClassifier` / `FCNetRegressor`: the scikit-learn contract over fcnet's own engine,
config schema, preprocessing and checkpoints."""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import safetensors.torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from typer.testing import CliRunner

from fcnet_cli import FCNetClassifier, FCNetRegressor, load_model
from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment
from fcnet_cli.errors import CheckpointError, RunError
from fcnet_cli.estimators.params import CLASSIFIER, REGRESSOR, build_experiment

runner = CliRunner()
# small and quick, yet able to pass scikit-learn's accuracy (> 0.83) and R² (> 0.5) checks
FAST = dict(hidden=[16], epochs=5, batch_size=32, optimizer="adam", lr=0.05, threads=1,
            device="cpu")

# fcnet splits every training table into stratified train / validation / test rows (the
# validation rows choose the best epoch, as in `fcnet train`), so each class needs at least
# 3 rows. These checks fit a classifier on 10-20 random rows where some class has 1 or 2.
TINY_CLASSES = ("fcnet's stratified train/val/test split needs >= 3 rows per class; the "
                "check's 10-20 row data set has a class with fewer")
EXPECTED_FAILURES = {
    "FCNetClassifier": {
        "check_dont_overwrite_parameters": TINY_CLASSES,
        "check_dict_unchanged": TINY_CLASSES,
        "check_f_contiguous_array_estimator": TINY_CLASSES,
        "check_fit2d_predict1d": TINY_CLASSES,
        "check_methods_sample_order_invariance": TINY_CLASSES,
        "check_methods_subset_invariance": TINY_CLASSES,
        "check_fit2d_1feature": TINY_CLASSES,
    },
    "FCNetRegressor": {
        # the model computes in float32: a matrix product over fewer rows may round a value
        # differently in its last bit (~1e-7 relative), the check's whole tolerance
        "check_methods_subset_invariance": "float32 products: last-bit differences between "
                                           "batch sizes exceed the check's rtol=1e-7",
    },
}


def _expected_failures(estimator: object) -> dict[str, str]:
    return EXPECTED_FAILURES[type(estimator).__name__]


@parametrize_with_checks([FCNetClassifier(**FAST), FCNetRegressor(**FAST)],
                         expected_failed_checks=_expected_failures)
def test_scikit_learn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


# ----------------------------------------------------------------------------- data


def _blobs(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Three well-separated classes, two numeric columns and a text column (float32 values,
    so a CSV round trip reads back the very numbers)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(["ant", "bee", "cat"], n // 3)
    centre = {"ant": (0.0, 0.0), "bee": (3.0, 0.0), "cat": (0.0, 3.0)}
    xy = np.array([centre[c] for c in y]) + rng.normal(0, 0.5, (n, 2))
    xy = xy.astype(np.float32).astype(np.float64)
    colour = np.where(y == "cat", "red", rng.choice(["blue", "green"], n)).astype(object)
    frame = pd.DataFrame({"a": xy[:, 0], "b": xy[:, 1], "colour": colour})
    return frame, pd.Series(y, name="label")


def _fields(path: Path) -> Path:
    """A YAML experiment with FAST's fields, reading `path`."""
    path.with_suffix(".yaml").write_text(
        f"data: {{dataset: csv, path: {path.name}, target: label, missing: most_frequent}}\n"
        "model: {hidden: [16]}\n"
        "optimizer: {name: adam, lr: 0.05}\n"
        "training: {epochs: 5, batch_size: 32, threads: 1, seed: 3, device: cpu}\n",
        encoding="utf-8")
    return path.with_suffix(".yaml")


# ----------------------------------------------------------------------------- API


def test_parameters_default_to_a_minimal_yaml_and_round_trip() -> None:
    clf = FCNetClassifier()
    assert all(v is None for k, v in clf.get_params().items() if k != "verbose")
    clf.set_params(lr=0.1, hidden=(8, 4))
    assert clf.get_params()["lr"] == 0.1 and clf.get_params()["hidden"] == (8, 4)
    assert clone(clf).get_params() == clf.get_params()


def test_defaults_are_a_minimal_yaml_files(tmp_path: Path) -> None:
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("data: {dataset: csv, path: t.csv, target: label}\n", encoding="utf-8")
    cli = load_experiment(minimal)
    for owner, fields, task in (("FCNetClassifier", CLASSIFIER, "classification"),
                                ("FCNetRegressor", REGRESSOR, "regression")):
        ours = build_experiment(owner, fields, {}, config=None, task=task, target=["label"],
                                output_dir=None)
        for section in ("model", "loss", "regularization", "optimizer", "scheduler",
                        "training"):
            assert getattr(ours, section) == getattr(cli, section), section
        same = {"path", "root"}  # the file names, resolved against the YAML file
        assert ours.data.model_dump(exclude=same) == cli.data.model_dump(exclude=same)


def test_bad_parameters_raise_the_message_the_cli_prints() -> None:
    X, y = _blobs()
    with pytest.raises(ValueError) as err:
        FCNetClassifier(lr=-1, activation="swish", epochs=2).fit(X, y)
    cli = runner.invoke(app, ["validate", "experiments/digits.yaml", "--set",
                              "optimizer.lr=-1", "--set", "model.activation=swish"])
    assert cli.exit_code == 2
    # the CLI: "error: --set optimizer.lr: <message>"; the estimator: "lr (optimizer.lr): ..."
    theirs = {ln.removeprefix("error: --set ") for ln in cli.output.splitlines()}
    ours = {ln.split(" (", 1)[1].replace("):", ":", 1) for ln in str(err.value).splitlines()}
    assert ours == theirs and len(ours) == 2
    assert "lr (optimizer.lr): Input should be greater than 0 (got -1)" in str(err.value)


def test_config_file_is_overridden_by_parameters_and_placed_in_errors(tmp_path: Path) -> None:
    X, y = _blobs()
    cfg = tmp_path / "base.yaml"
    cfg.write_text("model: {hidden: [8]}\noptimizer: {lr: 0.0}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{cfg}:2: optimizer.lr: Input should be greater"):
        FCNetClassifier(config=cfg, epochs=2).fit(X, y)
    clf = FCNetClassifier(config=cfg, lr=0.05, epochs=2, threads=1, device="cpu").fit(X, y)
    assert clf.model_.experiment.model.hidden == [8]
    assert clf.model_.experiment.optimizer.lr == 0.05
    with pytest.raises(ValueError, match=r"config model.hiden: unknown key; did you mean"):
        FCNetClassifier(config={"model": {"hiden": [3]}}).fit(X, y)


def test_l1_and_l2_are_the_penalty_coefficients() -> None:
    X, y = _blobs()
    clf = FCNetClassifier(l1=1e-4, l2=3e-4, epochs=2, threads=1, device="cpu").fit(X, y)
    reg = clf.model_.experiment.regularization
    assert (reg.type, reg.strength, reg.l1_ratio) == ("elastic_net", pytest.approx(4e-4),
                                                      pytest.approx(0.25))
    with pytest.raises(ValueError, match=r"^l2 \(regularization.strength\): Input should be "
                                         r"greater than or equal to 0"):
        FCNetClassifier(l2=-1.0).fit(X, y)


def test_a_run_that_diverges_at_once_leaves_no_model() -> None:
    X, y = _blobs()
    with pytest.raises(RunError, match=r"training ended diverged \(non-finite loss at epoch 1"):
        FCNetClassifier(**{**FAST, "optimizer": "sgd", "lr": 1e30}).fit(X, y)


def test_text_columns_and_missing_cells_from_pandas() -> None:
    X, y = _blobs()
    X.loc[[0, 5, 40], "colour"] = [None, np.nan, None]
    X.loc[[3, 50], "a"] = np.nan
    with pytest.raises(ValueError, match=r"missing values in 2 column\(s\): 'a' 2"):
        FCNetClassifier(epochs=2).fit(X, y)
    clf = FCNetClassifier(missing="mean", **FAST).fit(X, y)
    assert clf.classes_.tolist() == ["ant", "bee", "cat"]
    assert clf.feature_names_in_.tolist() == ["a", "b", "colour"]
    assert clf.model_.spec.prep.input_names == ["a", "b", "colour=blue", "colour=green",
                                                "colour=red"]
    new = pd.DataFrame({"a": [0.1, np.nan, 0.0], "b": [0.0, 0.2, 3.1],
                        "colour": ["green", None, "purple"]})  # purple: unseen, all zeros
    proba = clf.predict_proba(new)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(1), 1, atol=1e-6)
    assert clf.predict(new)[[0, 2]].tolist() == ["ant", "cat"]
    assert clf.score(X, y) > 0.9
    same = pl.DataFrame({"a": [0.1, None, 0.0], "b": [0.0, 0.2, 3.1],
                         "colour": ["green", None, "purple"]})
    polars_proba = clf.predict_proba(same)
    np.testing.assert_array_equal(polars_proba, proba)


def test_fit_writes_no_run_directory_unless_asked(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _blobs()
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    clf = FCNetClassifier(**FAST).fit(X, y)
    assert clf.run_dir_ is None
    assert list(tmp_path.iterdir()) == [scratch] and not list(scratch.iterdir())
    kept = FCNetClassifier(output_dir=tmp_path / "runs", **FAST).fit(X, y)
    assert kept.run_dir_ is not None and kept.run_dir_.parent == tmp_path / "runs" / \
        "FCNetClassifier"
    assert (kept.run_dir_ / "config.yaml").is_file()
    np.testing.assert_array_equal(load_model(kept.run_dir_).predict_proba(X),
                                  kept.predict_proba(X).astype(np.float32))


def test_quiet_by_default_verbose_shows_the_epoch_table(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    X, y = _blobs()
    FCNetClassifier(**FAST).fit(X, y)
    assert capsys.readouterr().out == ""
    FCNetClassifier(verbose=1, **FAST).fit(X, y)
    out = capsys.readouterr().out
    assert "training FCNetClassifier on cpu: 54 train / 18 val / 18 test" in out
    assert "epoch 5/5  train_loss" in out
    assert "run directory" not in out  # fit's temporary one is gone when fit returns


# ----------------------------------------------------------------------------- sklearn tools


def test_pipeline_with_a_column_transformer() -> None:
    X, y = _blobs()
    pre = ColumnTransformer([("num", StandardScaler(), ["a", "b"]),
                             ("cat", OneHotEncoder(sparse_output=False), ["colour"])])
    pipe = Pipeline([("pre", pre), ("net", FCNetClassifier(normalize="none", **FAST))])
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert pipe.predict_proba(X.head(4)).shape == (4, 3)
    assert pipe.named_steps["net"].n_features_in_ == 5


def test_cross_val_score_three_folds() -> None:
    X, y = _blobs()
    scores = cross_val_score(FCNetClassifier(**FAST), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.7


def test_grid_search_over_lr() -> None:
    X, y = _blobs()
    search = GridSearchCV(FCNetClassifier(**{**FAST, "epochs": 3}),
                          {"lr": [1e-5, 0.05]}, cv=3).fit(X, y)
    assert search.best_params_ == {"lr": 0.05}
    assert search.best_estimator_.lr == 0.05 and search.score(X, y) > 0.9


def test_clone_and_pickle_give_identical_predictions() -> None:
    X, y = _blobs()
    clf = FCNetClassifier(missing="most_frequent", seed=4, **FAST).fit(X, y)
    again = clone(clf).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.checkpoint_files_ == clf.checkpoint_files_
    reg = FCNetRegressor(**FAST).fit(X[["a", "b"]], X["a"] * 2 + 1)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X[["a", "b"]]),
                                  reg.predict(X[["a", "b"]]))


def test_pickle_is_checked_by_the_safe_loader() -> None:
    X, y = _blobs()
    clf = FCNetClassifier(**FAST).fit(X, y)
    state = clf.__getstate__()
    weights = bytearray(state["_checkpoint"]["model.safetensors"])
    weights[-1] ^= 1
    state["_checkpoint"] = {**state["_checkpoint"], "model.safetensors": bytes(weights)}
    with pytest.raises(CheckpointError, match=r"FCNetClassifier/model.safetensors: sha256 .* "
                                              r"does not match meta.json"):
        FCNetClassifier().__setstate__(state)


# ----------------------------------------------------------------------------- the CLI


def test_same_weights_as_fcnet_train(tmp_path: Path) -> None:
    X, y = _blobs()
    X.loc[[1, 7], "colour"] = None
    csv = tmp_path / "blobs.csv"
    X.assign(label=y).to_csv(csv, index=False)
    cfg = _fields(csv)
    run = runner.invoke(app, ["train", str(cfg), "--quiet", "--set",
                              f"output.dir={tmp_path / 'runs'}"])
    assert run.exit_code == 0, run.output
    (best,) = (tmp_path / "runs").glob("*/*/checkpoints/best/model.safetensors")
    clf = FCNetClassifier(hidden=[16], optimizer="adam", lr=0.05, epochs=5, batch_size=32,
                          threads=1, seed=3, device="cpu", missing="most_frequent").fit(X, y)
    ours = safetensors.torch.load(clf.checkpoint_files_["model.safetensors"])
    theirs = safetensors.torch.load_file(best)
    assert sorted(ours) == sorted(theirs)
    for name, tensor in theirs.items():
        assert ours[name].equal(tensor), name


def test_save_then_fcnet_predict_eval_and_export(tmp_path: Path) -> None:
    X, y = _blobs()
    clf = FCNetClassifier(**FAST).fit(X, y)
    saved = clf.save(tmp_path / "model")
    with pytest.raises(FileExistsError):
        clf.save(saved)
    rows = tmp_path / "rows.csv"
    X.assign(label=y).to_csv(rows, index=False)
    out = runner.invoke(app, ["predict", str(saved), str(rows), "--proba"])
    assert out.exit_code == 0, out.output
    table = pl.read_csv(out.stdout.encode())
    assert table["prediction"].to_list() == clf.predict(X).tolist()
    proba = table.select([f"proba_{c}" for c in clf.classes_]).to_numpy()
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-6)
    report = runner.invoke(app, ["eval", str(saved), "--data", str(rows), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["accuracy"] == pytest.approx(clf.score(X, y))
    again = runner.invoke(app, ["eval", str(saved)])  # no file: the table was in memory
    assert again.exit_code == 2 and "trained on a table in memory" in again.stderr
    np.testing.assert_array_equal(load_model(saved).predict_proba(X),
                                  clf.predict_proba(X).astype(np.float32))
    exported = runner.invoke(app, ["export", str(saved), "--format", "pt2", "-o",
                                   str(tmp_path / "model.pt2")])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "model.pt2").is_file()

"""Numerical embeddings (`model.num_embeddings`): the maths against hand-computed values,
fitted on the training split only, and one answer from predict, eval, load_model and the
exported ONNX graph on a table with text, boolean and missing numeric cells."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from fcnet_cli import load_experiment, load_model, train
from fcnet_cli.cli import app
from fcnet_cli.engine.data.embedded import embed_splits
from fcnet_cli.engine.data.embeddings import NumEmbedding, numeric_inputs
from fcnet_cli.engine.data.load import load_frame
from fcnet_cli.engine.data.splitrows import split_rows
from fcnet_cli.engine.evaluate import evaluate_checkpoint
from fcnet_cli.errors import DataError

runner = CliRunner()
KINDS = ["piecewise_linear", "periodic"]
FEATURES = ["size", "count", "color", "flag"]

# ---------------------------------------------------------------- the maths


def test_piecewise_linear_matches_hand_computed_values() -> None:
    # column 1 takes 0..4: quantiles 0, .25, .5, .75, 1 are the edges 0, 1, 2, 3, 4 (4 bins)
    x_train = torch.tensor([[9.0, v] for v in (0.0, 1.0, 2.0, 3.0, 4.0)])
    emb = NumEmbedding.fit("piecewise_linear", x_train, [1], n_bins=4)
    assert emb.params[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and emb.bins == [4]
    x = torch.tensor([[7.0, -1.0], [7.0, 0.5], [7.0, 2.25], [7.0, 5.0]])
    out = emb.apply(x)
    # input 0 passes through; input 1 becomes 4: 1 below, fraction in its bin, 0 above;
    # the first bin is open below (-1), the last above (2)
    expected = [[7, -1, 0, 0, 0], [7, 0.5, 0, 0, 0], [7, 1, 1, 0.25, 0], [7, 1, 1, 1, 2]]
    assert out.tolist() == expected
    assert emb.output_names(["a", "b"]) == ["a", "b#bin0", "b#bin1", "b#bin2", "b#bin3"]


def test_piecewise_linear_uses_fewer_bins_for_few_distinct_values() -> None:
    x_train = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 2.0], [1.0, 5.0, 3.0],
                            [1.0, 5.0, 4.0]])
    emb = NumEmbedding.fit("piecewise_linear", x_train, [0, 1, 2], n_bins=16)
    # a 0/1 column: one bin [0, 1]; a constant column: one bin [5, 6]; 4 values: 3 bins,
    # edges at the values themselves (16 requested)
    assert emb.bins == [1, 1, 3] and emb.out_features == 5
    assert emb.params[2].tolist() == [1.0, 2.0, 3.0, 4.0]
    out = emb.apply(torch.tensor([[0.25, 5.5, 2.5]]))
    assert out[0, :2].tolist() == [0.25, 0.5]  # one bin: the unclipped position in it
    assert out[0, 2:].tolist() == [1.0, 0.5, 0.0]
    # more distinct values than bins: quantile edges, each bin holding a quarter
    many = NumEmbedding.fit("piecewise_linear", torch.arange(9.0).reshape(-1, 1), [0],
                            n_bins=4)
    assert many.params[0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_periodic_matches_hand_computed_values() -> None:
    emb = NumEmbedding("periodic", 2, [0], torch.tensor([[0.25, 0.5]]), [])
    out = emb.apply(torch.tensor([[1.0, 3.0], [0.5, -2.0]]))
    h = math.sqrt(0.5)
    # [x, sin(2π·0.25·x), sin(2π·0.5·x), cos(2π·0.25·x), cos(2π·0.5·x)], then input 1
    expected = [[1.0, 1.0, 0.0, 0.0, -1.0, 3.0], [0.5, h, 1.0, h, 0.0, -2.0]]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    assert emb.output_names(["a", "b"]) == ["a", "a#sin0", "a#sin1", "a#cos0", "a#cos1", "b"]


@pytest.mark.parametrize("kind", ["piecewise_linear", "periodic"])
def test_an_empty_split_embeds_to_no_rows(kind: str) -> None:
    """`data.test_fraction: 0` leaves the test split empty: it embeds to (0, width)."""
    emb = NumEmbedding.fit(kind, torch.arange(12.0).reshape(-1, 2), [0, 1], n_bins=3,
                           n_frequencies=2, sigma=0.1, seed=0)
    width = emb.apply(torch.zeros(1, 2)).shape[1]
    assert emb.apply(torch.zeros(0, 2)).shape == (0, width)
    assert emb.module()(torch.zeros(0, 2)).shape == (0, width)


def test_periodic_frequencies_come_from_the_seed_not_the_data() -> None:
    x = torch.randn(50, 3)
    a = NumEmbedding.fit("periodic", x, [0, 2], n_frequencies=400, sigma=0.1, seed=3)
    b = NumEmbedding.fit("periodic", x * 7 + 1, [0, 2], n_frequencies=400, sigma=0.1, seed=3)
    c = NumEmbedding.fit("periodic", x, [0, 2], n_frequencies=400, sigma=0.1, seed=4)
    assert a.params.shape == (2, 400) and torch.equal(a.params, b.params)
    assert not torch.equal(a.params, c.params)
    assert 0.09 < float(a.params.std()) < 0.11  # N(0, σ)
    assert a.out_features == 3 - 2 + 2 * (1 + 2 * 400)


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip_and_refusals(kind: str) -> None:
    emb = NumEmbedding.fit(kind, torch.randn(40, 3), [0, 2], n_bins=5, n_frequencies=3)
    back = NumEmbedding.from_json(json.loads(json.dumps(emb.to_json())))
    x = torch.randn(6, 3)
    assert torch.equal(back.apply(x), emb.apply(x))
    bad = emb.to_json() | {"inputs": [2, 0]}
    with pytest.raises(DataError, match="inputs increasing"):
        NumEmbedding.from_json(bad)
    with pytest.raises(DataError, match="kind is one of"):
        NumEmbedding.from_json(emb.to_json() | {"kind": "ple"})
    key = "edges" if kind == "piecewise_linear" else "frequencies"
    with pytest.raises(DataError, match="finite numbers"):
        NumEmbedding.from_json(emb.to_json() | {key: [[float("nan")], [1.0]]})


# ---------------------------------------------------------------- a messy table


def _table(n: int, seed: int) -> pl.DataFrame:
    """Numbers with missing cells, a text column, a boolean column; target y (text)."""
    rng = np.random.default_rng(seed)
    size = rng.normal(0, 1, n)
    count = rng.integers(0, 6, n).astype(float)
    color = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
    flag = rng.random(n) < 0.5
    score = size + 0.4 * count - (color == "red") + 0.8 * flag
    frame = pl.DataFrame({"size": size, "count": count, "color": color.tolist(),
                          "flag": flag.tolist(),
                          "y": np.where(score > 1.0, "high", "low").tolist()})
    holes = pl.Series(rng.random(n) < 0.12)
    return frame.with_columns(pl.when(holes).then(None).otherwise(pl.col("size"))
                              .alias("size"))


def _experiment_yaml(root: Path, csv: Path, kind: str, name: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(
        f"data: {{dataset: csv, path: {csv.as_posix()}, target: y, missing: median, "
        "missing_indicator: true}\n"
        f"model: {{hidden: [16], num_embeddings: {kind}, num_bins: 6}}\n"
        "optimizer: {name: adam, lr: 0.01}\n"
        "training: {epochs: 4, batch_size: 32, device: cpu}\n"
        f"output: {{dir: {(root / 'runs').as_posix()}, name: {name}}}\n", encoding="utf-8")
    return path


def _train(root: Path, csv: Path, kind: str, name: str) -> Path:
    result = train(load_experiment(_experiment_yaml(root, csv, kind, name)))
    assert result.run_dir is not None
    return Path(result.run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embed")
    csv = root / "table.csv"
    _table(180, 0).write_csv(csv)
    out = {kind: _train(root, csv, kind, kind) for kind in [*KINDS, "none"]}
    out["root"], out["csv"] = root, csv
    return out


def _onnx_feeds(csv: Path) -> dict[str, np.ndarray]:
    """Raw rows as the graph takes them: float32 (NaN = missing), text ("" = missing)."""
    raw = pl.read_csv(csv, infer_schema=False)
    feeds = {}
    for name in FEATURES:
        s = raw[name]
        if name in ("color", "flag"):
            feeds[name] = s.fill_null("").to_numpy().astype(object).reshape(-1, 1)
        else:
            feeds[name] = (s.cast(pl.Float64).fill_null(np.nan).to_numpy()
                           .astype(np.float32).reshape(-1, 1))
    return feeds


def _cli_proba(*args: str) -> np.ndarray:
    result = runner.invoke(app, ["predict", *args, "--proba"])
    assert result.exit_code == 0, result.output
    out = pl.read_csv(io.StringIO(result.stdout))
    return out.select("proba_high", "proba_low").to_numpy().astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_stores_the_embedding_and_network_grows(runs: dict[str, Path],
                                                           kind: str) -> None:
    meta = json.loads((runs[kind] / "checkpoints" / "best" / "meta.json").read_text("utf-8"))
    emb = meta["preprocessing"]["embedding"]
    model = load_model(runs[kind])
    prep = model.spec.prep
    # size, size_missing, count, color×3, flag×2: size and count are embedded
    assert emb["kind"] == kind and emb["inputs"] == [0, 2] and emb["in_features"] == 8
    assert prep.in_features == 8 and meta["in_features"] == prep.network_inputs > 8
    assert model.module[-1][0].in_features == meta["in_features"]
    if kind == "piecewise_linear":
        assert all(len(e) - 1 <= 6 for e in emb["edges"])
        assert len(emb["edges"][1]) - 1 == 5  # count: 6 distinct values, 5 bins


def test_no_embedding_keeps_the_checkpoint_format(runs: dict[str, Path]) -> None:
    meta = json.loads((runs["none"] / "checkpoints" / "best" / "meta.json").read_text("utf-8"))
    assert "embedding" not in meta["preprocessing"]
    assert meta["in_features"] == len(meta["preprocessing"]["normalization"]["shift"]) == 8


@pytest.mark.parametrize("kind", KINDS)
def test_predict_eval_load_model_and_onnx_agree(runs: dict[str, Path], kind: str,
                                                tmp_path: Path) -> None:
    run, csv = runs[kind], runs["csv"]
    model = load_model(run)
    frame = pl.read_csv(csv)
    assert frame["size"].null_count() > 0 and frame["flag"].dtype == pl.Boolean
    proba = model.predict_proba(frame)  # load_model: (N, 2), classes high, low
    # predict (the CLI, streaming the file)
    assert float(np.abs(_cli_proba(str(run), str(csv)) - proba).max()) <= 1e-5
    # eval on the stored test split: its loss is the mean cross-entropy of the same rows
    exp = load_experiment(_experiment_yaml(runs["root"], csv, kind, kind))
    test = split_rows(exp.data)["test"]
    result = evaluate_checkpoint(run / "checkpoints" / "best", "test")
    y = (frame["y"].to_numpy()[test] == "low").astype(int)
    nll = -np.log(proba[test, y]).mean()
    assert result.n == len(test) and abs(result.loss - nll) <= 1e-5
    assert abs(result.accuracy - (proba[test].argmax(1) == y).mean()) <= 1e-9
    # predict --split test rebuilds the split's encoded rows
    assert float(np.abs(_cli_proba(str(run), "--split", "test") - proba[test]).max()) <= 1e-5
    # the exported graph takes the raw columns and embeds inside
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    out = tmp_path / "model.onnx"
    exported = runner.invoke(app, ["export", str(run), "--format", "onnx", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == sorted(FEATURES)
    onnx_proba = session.run(["probabilities"], _onnx_feeds(csv))[0]
    assert float(np.abs(onnx_proba - proba).max()) <= 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_estimator_applies_the_embedding(kind: str) -> None:
    from fcnet_cli.estimators import FCNetClassifier

    frame = _table(120, 2)
    x, y = frame.drop("y"), frame["y"].to_numpy()
    clf = FCNetClassifier(hidden=[8], epochs=2, missing="median", num_embeddings=kind,
                          device="cpu").fit(x, y)
    assert clf.model_.spec.prep.embedding is not None
    assert clf.model_.spec.prep.embedding.kind == kind
    np.testing.assert_allclose(clf.predict_proba(x), clf.model_.predict_proba(x)[:, [0, 1]],
                               atol=1e-6)


# ---------------------------------------------------------------- train split only


def test_embedding_is_fitted_on_the_training_split_only(runs: dict[str, Path]) -> None:
    """A test row changed to an extreme value changes neither the bins nor the embedded
    training rows."""
    root = runs["root"]
    exp = load_experiment(_experiment_yaml(root, runs["csv"], "piecewise_linear", "probe"))
    frame = _table(180, 0)
    rows = split_rows(exp.data)
    i = int(rows["test"][0])
    changed = frame.with_columns(pl.when(pl.int_range(pl.len()) == i).then(1e6)
                                 .otherwise(pl.col("size")).alias("size"))
    base, other = (embed_splits(load_frame(f, exp.data), exp.model, exp.data.split_seed)
                   for f in (frame, changed))
    emb, emb2 = base.preprocessing.embedding, other.preprocessing.embedding
    assert emb is not None and emb2 is not None
    assert torch.equal(emb.params, emb2.params) and emb.bins == emb2.bins
    assert torch.equal(base.x_train, other.x_train) and torch.equal(base.x_val, other.x_val)
    assert not torch.equal(base.x_test, other.x_test)  # the change did reach the test split


def test_changing_a_test_row_leaves_other_predictions_alone(runs: dict[str, Path]) -> None:
    root = runs["root"] / "probe"
    root.mkdir()
    frame = _table(180, 0)
    exp = load_experiment(_experiment_yaml(root, runs["csv"], "piecewise_linear", "x"))
    i = int(split_rows(exp.data)["test"][0])
    changed = frame.with_columns(pl.when(pl.int_range(pl.len()) == i).then(50.0)
                                 .otherwise(pl.col("size")).alias("size"))
    (root / "changed.csv").write_text(changed.write_csv(), encoding="utf-8")
    again = _train(root, root / "changed.csv", "piecewise_linear", "changed")
    keep = np.arange(len(frame)) != i
    p0 = load_model(runs["piecewise_linear"]).predict_proba(frame.filter(pl.Series(keep)))
    p1 = load_model(again).predict_proba(frame.filter(pl.Series(keep)))
    np.testing.assert_array_equal(p0, p1)


# ---------------------------------------------------------------- old checkpoints, config


def test_old_checkpoint_without_embedding_fields_still_loads(runs: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """A checkpoint written before model.num_embeddings existed: no such config keys."""
    old = tmp_path / "old"
    shutil.copytree(runs["none"] / "checkpoints" / "best", old)
    meta = json.loads((old / "meta.json").read_text("utf-8"))
    for key in ("num_embeddings", "num_bins", "num_frequencies", "periodic_sigma"):
        meta["config"]["model"].pop(key)
    (old / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    frame = pl.read_csv(runs["csv"])
    model = load_model(old)
    assert model.spec.prep.embedding is None and len(model.module) == 2
    np.testing.assert_array_equal(model.predict_proba(frame),
                                  load_model(runs["none"]).predict_proba(frame))


def test_numeric_inputs_skip_indicators_categories_and_dates(runs: dict[str, Path]) -> None:
    prep = load_model(runs["none"]).spec.prep
    assert prep.input_names[:3] == ["size", "size_missing", "count"]
    assert numeric_inputs(prep.columns) == [0, 2]


@pytest.mark.parametrize(("setting", "needles"), [
    ("model.num_embeddings=ple", ["model.num_embeddings", "piecewise_linear", "periodic"]),
    ("model.num_bins=0", ["model.num_bins", "greater than or equal to 1"]),
    ("model.num_bins=5000", ["model.num_bins", "less than or equal to 1024"]),
    ("model.periodic_sigma=-1", ["model.periodic_sigma", "greater than 0"]),
    ("model.num_frequencies=0", ["model.num_frequencies"]),
    ("model.num_embedding=periodic", ["num_embedding"]),
])
def test_bad_embedding_settings_are_refused(tmp_path: Path, setting: str,
                                            needles: list[str]) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("data: {dataset: iris}\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path), "--set", setting])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_validate_explain_names_the_embedding_fields(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("data: {dataset: iris}\nmodel: {num_embeddings: periodic}\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path), "--explain"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "model.num_embeddings" in text and "piecewise_linear" in text
    assert "model.num_bins" in text and "model.periodic_sigma" in text


def test_embedding_settings_separate_population_layouts() -> None:
    from fcnet_cli.config import Experiment, layout_key

    def key(**model: object) -> str:
        return layout_key(Experiment.model_validate({"model": model}))

    assert key() == key(num_bins=8)  # none: the knobs do not matter, the key is as before
    assert "num_embeddings" not in key()
    assert key(num_embeddings="periodic") != key()
    assert key(num_embeddings="periodic") != key(num_embeddings="periodic", periodic_sigma=1.0)
    assert key(num_embeddings="piecewise_linear") != key(num_embeddings="piecewise_linear",
                                                         num_bins=4)


def test_ensemble_members_share_one_embedding(runs: dict[str, Path]) -> None:
    root = runs["root"] / "ensemble"
    root.mkdir()
    path = _experiment_yaml(root, runs["csv"], "periodic", "ens")
    path.write_text(path.read_text("utf-8").replace("hidden: [16]", "hidden: [16], "
                                                    "ensemble: 2"), encoding="utf-8")
    result = train(load_experiment(path))
    assert result.run_dir is not None
    model = load_model(result.run_dir)
    assert model.ensemble == 2 and model.spec.prep.embedding is not None
    frame = pl.read_csv(runs["csv"])
    proba = model.predict_proba(frame)
    members = [torch.softmax(m(torch.from_numpy(model.features(frame))), -1).detach().numpy()
               for m in model.member_modules]
    np.testing.assert_allclose(np.mean(members, 0), proba, atol=1e-6)
    test = split_rows(load_experiment(path).data)["test"]
    evaluated = evaluate_checkpoint(Path(result.run_dir) / "checkpoints" / "best", "test")
    y = (frame["y"].to_numpy()[test] == "low").astype(int)
    assert abs(evaluated.loss - -np.log(proba[test, y]).mean()) <= 1e-5

"""ONNX export of models of messy tables: the graph takes the RAW columns (text with missing
cells, numbers with missing cells, an unseen category) and agrees with predict."""

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.engine.data.tables import read_table

runner = CliRunner()
FEATURES = ["island", "bill_length_mm", "flipper_length_mm", "sex"]


@dataclass
class Messy:
    root: Path
    classifier: Path  # run directories
    regressor: Path
    new: Path  # rows to predict: a missing cell per column kind and an unseen category


def _penguins(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.integers(0, 3, n)
    island = np.array(["Biscoe", "Dream", "Torgersen"])[(species + rng.integers(0, 2, n)) % 3]
    sex = np.array(["male", "female"])[rng.integers(0, 2, n)]
    frame = pl.DataFrame({
        "species": np.array(["Adelie", "Chinstrap", "Gentoo"])[species],
        "island": island.tolist(),
        "bill_length_mm": 35 + 5 * species + rng.normal(0, 1.5, n),
        "flipper_length_mm": 180 + 10 * species + rng.normal(0, 4, n),
        "sex": sex.tolist(),
        "body_mass_g": 3000 + 400 * species + 300 * (sex == "male") + rng.normal(0, 100, n)})
    holes = {c: pl.Series(rng.random(n) < 0.1) for c in ("island", "bill_length_mm", "sex")}
    return frame.with_columns(pl.when(~holes[c]).then(pl.col(c)).alias(c) for c in holes)


def _train(root: Path, name: str, head: str) -> Path:
    from fcnet_cli import load_experiment, train

    (root / f"{name}.yaml").write_text(
        head + f"model: {{hidden: [16]}}\ntraining: {{epochs: 4, batch_size: 32, device: cpu}}\n"
        f"output: {{dir: {(root / 'runs').as_posix()}}}\n", encoding="utf-8")
    result = train(load_experiment(root / f"{name}.yaml"))
    assert result.run_dir is not None
    return Path(result.run_dir)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Messy:
    root = tmp_path_factory.mktemp("messy")
    csv = (root / "penguins.csv").as_posix()
    _penguins(200, 0).write_csv(csv)
    cls = _train(root, "cls", f"data: {{dataset: csv, path: {csv}, target: species, "
                              "drop: [body_mass_g], missing: most_frequent, "
                              "missing_indicator: true}\n")
    reg = _train(root, "reg", f"task: regression\ndata: {{dataset: csv, path: {csv}, "
                              "target: body_mass_g, drop: [species], missing: median, "
                              "missing_indicator: true}\n")
    rows = _penguins(30, 1).to_dicts()
    rows[0]["island"] = "Atlantis"  # unseen in training: all-zero one-hot
    rows[1]["bill_length_mm"] = rows[2]["sex"] = rows[3]["island"] = None
    new = root / "new.csv"
    pl.DataFrame(rows).select(FEATURES[::-1]).write_csv(new)  # columns matched by name
    return Messy(root, cls, reg, new)


@pytest.fixture(scope="module")
def cls_onnx(messy: Messy) -> tuple[Path, dict]:
    """The classifier exported once (the first ONNX export of a process takes seconds)."""
    out = messy.root / "penguins.onnx"
    return out, _export(messy.classifier, out)


def _export(run: Path, out: Path) -> dict:
    result = runner.invoke(app, ["export", str(run), "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_name(out.name + ".json").read_text("utf-8"))


def _predict(run: Path, csv: Path, *options: str) -> np.ndarray:
    """`fcnet predict RUN CSV` (with `options`) as an (N, k) array, the class names dropped."""
    result = runner.invoke(app, ["predict", str(run), str(csv), *options])
    assert result.exit_code == 0, result.output
    out = pl.read_csv(io.StringIO(result.stdout))
    return out.drop("prediction", strict=False).to_numpy().astype(np.float32)


def raw_feeds(csv: Path, sidecar: dict) -> dict[str, np.ndarray]:
    """The graph's inputs from a CSV read as text, by the sidecar alone: float32 (NaN for
    an empty cell) or strings ("" for an empty cell), each (N, 1)."""
    raw = pl.read_csv(csv, infer_schema=False)
    feeds = {}
    for d in sidecar["inputs"]:
        s = raw[d["name"]]
        if d["dtype"] == "string":
            feeds[d["name"]] = s.fill_null("").to_numpy().astype(object).reshape(-1, 1)
        else:
            feeds[d["name"]] = (s.cast(pl.Float64).fill_null(np.nan).to_numpy()
                                .astype(np.float32).reshape(-1, 1))
    return feeds


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(feeds)
    return session.run(None, feeds)


def test_classifier_onnx_takes_raw_rows(messy: Messy, cls_onnx: tuple[Path, dict]) -> None:
    out, sidecar = cls_onnx
    feeds = raw_feeds(messy.new, sidecar)
    assert feeds["island"][0, 0] == "Atlantis" and feeds["island"][3, 0] == ""
    assert np.isnan(feeds["bill_length_mm"][1, 0])
    proba, logits = _run_onnx(out, feeds)
    expected = _predict(messy.classifier, messy.new, "--proba")
    assert proba.shape == expected.shape == (30, 3)
    assert float(np.abs(proba - expected).max()) <= 1e-5
    assert (proba.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), proba,
                               atol=1e-6)
    one = {k: v[:1] for k, v in feeds.items()}  # the batch axis is dynamic
    np.testing.assert_allclose(_run_onnx(out, one)[0], proba[:1], atol=1e-6)


def test_sidecar_describes_each_raw_input(messy: Messy, cls_onnx: tuple[Path, dict]) -> None:
    sidecar = cls_onnx[1]
    columns = {c.name: c for c in load_model(messy.classifier).spec.prep.columns}
    inputs = {d["name"]: d for d in sidecar["inputs"]}
    assert list(inputs) == sidecar["feature_names"] == FEATURES
    island = inputs["island"]
    assert island["dtype"] == "string" and island["shape"] == ["batch", 1]
    assert island["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert island["fill"] == columns["island"].fill and island["indicator"] is True
    assert island["missing"].startswith("empty or blank string")
    assert island["encoded_as"] == ["island=Biscoe", "island=Dream", "island=Torgersen",
                                    "island_missing"]
    bill = inputs["bill_length_mm"]
    assert bill["dtype"] == "float32" and bill["missing"] == "NaN"
    assert bill["fill"] == pytest.approx(columns["bill_length_mm"].fill)
    assert inputs["flipper_length_mm"]["indicator"] is False  # no hole in training
    assert [o["name"] for o in sidecar["outputs"]] == ["probabilities", "logits"]
    assert sidecar["outputs"][0]["columns"] == sidecar["classes"]
    assert sidecar["encoded_names"] == load_model(messy.classifier).spec.input_names
    assert "give raw feature values" not in json.dumps(sidecar)


def test_regressor_onnx_takes_raw_rows(messy: Messy, tmp_path: Path) -> None:
    out = tmp_path / "mass.onnx"
    sidecar = _export(messy.regressor, out)
    assert sidecar["task"] == "regression" and sidecar["targets"] == ["body_mass_g"]
    (pred,) = _run_onnx(out, raw_feeds(messy.new, sidecar))
    expected = _predict(messy.regressor, messy.new)
    std = float(load_model(messy.regressor).target.std[0])
    assert pred.shape == (30, 1) and float(pred.mean()) > 2000  # grams, not standard units
    assert float(np.abs(pred - expected).max()) <= 1e-4 * std


def test_unseen_and_missing_cells_are_encoded_as_predict_does(
        messy: Messy, cls_onnx: tuple[Path, dict]) -> None:
    """Negative control: the same rows with the unseen category replaced by a known one
    predict differently, so the comparison above sees the encoding."""
    out, sidecar = cls_onnx
    feeds = raw_feeds(messy.new, sidecar)
    base = _run_onnx(out, feeds)[1]
    for value in ("Biscoe", "Dream", "Torgersen"):
        changed = {**feeds, "island": feeds["island"].copy()}
        changed["island"][0, 0] = value
        assert not np.allclose(_run_onnx(out, changed)[1][0], base[0], atol=1e-6)
    gone = {**feeds, "sex": feeds["sex"].copy()}
    gone["sex"][2, 0] = "NA"  # the CSV reader's null spelling: missing too
    np.testing.assert_allclose(_run_onnx(out, gone)[1], base, atol=1e-6)


def test_pt2_takes_the_encoded_matrix(messy: Messy, tmp_path: Path) -> None:
    """torch.export takes tensors, not strings: the program takes `encoded_names`."""
    import torch

    out = tmp_path / "penguins.pt2"
    result = runner.invoke(app, ["export", str(messy.classifier), "--format", "pt2",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(out.with_name("penguins.pt2.json").read_text("utf-8"))
    model = load_model(messy.classifier)
    assert sidecar["inputs"][0]["columns"] == sidecar["encoded_names"] == model.spec.input_names
    assert [c["name"] for c in sidecar["columns"]] == FEATURES
    assert "not strings" in sidecar["preprocessing"]
    frame = read_table(messy.new, "csv")
    with pytest.warns(UserWarning, match="'island' 'Atlantis'"):
        x = model.features(frame)
    with torch.no_grad():
        proba = torch.export.load(str(out)).module()(torch.from_numpy(x)).numpy()
    expected = _predict(messy.classifier, messy.new, "--proba")
    assert float(np.abs(proba - expected).max()) <= 1e-5
    assert (proba.argmax(1) == expected.argmax(1)).all()


def test_positional_data_set_takes_one_features_input(tmp_path: Path) -> None:
    """A model of an NPZ set (matched by width everywhere) takes `features` (N, F); the
    input divisor of image sets (255) is inside the graph and the program."""
    import onnxruntime as ort
    import torch

    from fcnet_cli import load_experiment, train
    from fcnet_cli.serve.export import export_model

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, 6)).astype(np.float32)
    np.savez(tmp_path / "px.npz", x=x, y=(x[:, 0] + x[:, 1] > 255).astype(np.int64))
    (tmp_path / "px.yaml").write_text(
        f"data: {{dataset: npz, path: {(tmp_path / 'px.npz').as_posix()}}}\n"
        "model: {hidden: [8]}\ntraining: {epochs: 2, batch_size: 16, device: cpu}\n"
        f"output: {{dir: {(tmp_path / 'runs').as_posix()}}}\n", encoding="utf-8")
    run = train(load_experiment(tmp_path / "px.yaml")).run_dir
    model = load_model(run)
    model.spec.prep.input_divisor = 255.0  # as an image set's (pixels 0..255)
    expected = model.predict_proba(x)
    onnx_report = export_model(model, tmp_path / "px.onnx", "onnx")
    session = ort.InferenceSession(str(onnx_report.path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [("features", 6)]
    proba = session.run(None, {"features": x})[0]
    export_model(model, tmp_path / "px.pt2", "pt2")
    with torch.no_grad():
        program = torch.export.load(str(tmp_path / "px.pt2")).module()(torch.from_numpy(x))
    for got in (proba, program.numpy()):
        assert float(np.abs(got - expected).max()) <= 1e-5
    sidecar = json.loads((tmp_path / "px.onnx.json").read_text("utf-8"))
    assert sidecar["inputs"][0]["name"] == "features" and sidecar["inputs"][0]["columns"] == [
        f"x_{i}" for i in range(6)]
    model.spec.prep.input_divisor = 1.0  # the divisor matters: the graphs above used it
    assert float(np.abs(model.predict_proba(x) - expected).max()) > 1e-3


def test_a_column_named_as_an_output_is_refused(messy: Messy, tmp_path: Path) -> None:
    from fcnet_cli.errors import UsageError
    from fcnet_cli.serve.export import export_model

    model = load_model(messy.classifier)
    model.spec.prep.columns[1].name = "logits"
    with pytest.raises(UsageError, match="^cannot export to ONNX: the column 'logits' has the "
                                         "name of a graph output"):
        export_model(model, tmp_path / "m.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []

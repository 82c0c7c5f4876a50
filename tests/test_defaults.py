"""The data-aware default rule (engine/train/defaults.py), robust normalization, and the end-of-run
diagnostics (analysis/diagnose.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from fcnet_cli.analysis.diagnose import diagnose
from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment, validate_experiment
from fcnet_cli.engine.data.normalization import Normalization, smooth_clip
from fcnet_cli.engine.train.defaults import (
    ENSEMBLE,
    LR,
    STEPS,
    DataFacts,
    auto_fields,
    default_rule,
    resolve_defaults,
    set_fields,
)

CLS = "classification"


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(("rows", "batch", "epochs", "patience"), [
    (96, 16, 167, 30),  # iris-sized: 6 steps per epoch
    (1150, 128, 112, 22),  # digits-sized: 9 steps per epoch
    (50_000, 256, 20, 10),  # large: the budget is reached in under 20 epochs, 20 is the floor
    (10, 16, 200, 30),  # tiny: one step per epoch, at most 200 epochs
])
def test_rule_values_for_data_shapes(rows: int, batch: int, epochs: int, patience: int) -> None:
    decided = default_rule(DataFacts(rows, 8, 3, CLS), set(), 64)
    assert decided["training.batch_size"][0] == batch
    assert decided["training.epochs"][0] == epochs
    assert epochs == min(200, max(20, math.ceil(STEPS / math.ceil(rows / batch))))
    assert decided["training.early_stopping.patience"][0] == patience
    assert decided["optimizer.name"][0] == "adamw"
    assert decided["optimizer.lr"][0] == LR
    assert decided["scheduler.name"][0] == "cosine"
    assert decided["loss.label_smoothing"][0] == 0.1
    assert f"{rows} training rows" in decided["training.batch_size"][1]


def test_a_set_field_is_never_overridden() -> None:
    exp = validate_experiment({"data": {"dataset": "wine"},
                               "optimizer": {"lr": 0.5},
                               "training": {"batch_size": 7, "epochs": 3}})
    assert set_fields(exp) >= {"optimizer.lr", "training.batch_size", "training.epochs"}
    out, reasons = resolve_defaults(exp, DataFacts(258, 13, 3, CLS))
    assert (out.optimizer.lr, out.training.batch_size, out.training.epochs) == (0.5, 7, 3)
    assert out.optimizer.name == "sgd"  # an optimizer field is set: its recipe is the user's
    assert out.scheduler.name == "none" and out.training.early_stopping.patience is None
    assert out.loss.label_smoothing == 0.0
    assert reasons == {}


def test_regression_gets_no_label_smoothing() -> None:
    decided = default_rule(DataFacts(300, 8, 1, "regression"), set(), 64)
    assert "loss.label_smoothing" not in decided and decided["optimizer.name"][0] == "adamw"


def test_epochs_follow_a_set_batch_size() -> None:
    exp = validate_experiment({"data": {"dataset": "wine"}, "training": {"batch_size": 258}})
    out, reasons = resolve_defaults(exp, DataFacts(258, 13, 3, CLS))
    assert out.training.epochs == 200 and "1 steps per epoch" in reasons["training.epochs"]
    assert "training.batch_size" not in reasons


def test_resolution_is_idempotent_and_recorded() -> None:
    exp = validate_experiment({"data": {"dataset": "wine"}})
    out, reasons = resolve_defaults(exp, DataFacts(258, 13, 3, CLS), ensemble=True)
    assert set(reasons) == set(auto_fields(exp)) and out.auto == reasons
    assert out.model.ensemble == ENSEMBLE
    again, more = resolve_defaults(out, DataFacts(999, 13, 3, CLS), ensemble=True)
    assert more == {} and again.training.batch_size == out.training.batch_size == 32


def _write_table(tmp_path: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    x[0, 0] = 1e4  # an outlier the robust scaling squashes
    frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                          "label": (x[:, 1] + x[:, 2] > 0).astype(int)})
    path = tmp_path / "t.csv"
    frame.write_csv(path)
    return path


def _train_cli(tmp_path: Path, data: str = "", epochs: int = 2) -> tuple[Path, Path]:
    """`fcnet train -q` of an `epochs`-epoch YAML on the generated table; (table, run dir)."""
    path = _write_table(tmp_path)
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {path.as_posix()!r}{data}}}\n"
                   f"training: {{epochs: {epochs}, device: cpu}}\n"
                   f"output: {{dir: {(tmp_path / 'runs').as_posix()!r}}}\n")
    res = CliRunner().invoke(app, ["train", "-q", str(cfg)])
    assert res.exit_code == 0, res.output
    return path, Path(res.stdout.strip().splitlines()[-1])


def test_train_records_auto_fields_and_reproduces(tmp_path: Path) -> None:
    _, run_dir = _train_cli(tmp_path)
    text = (run_dir / "config.yaml").read_text()
    # 120 rows: 72 train (0.6), batch 72/8 = 9 -> 8 -> the floor 16
    assert "#   training.batch_size: auto: 72 training rows" in text
    assert "#   optimizer.name: auto:" in text and "training.epochs: auto" not in text
    saved = load_experiment(run_dir / "config.yaml")
    assert (saved.training.batch_size, saved.optimizer.name, saved.scheduler.name,
            saved.training.epochs) == (16, "adamw", "cosine", 2)
    assert auto_fields(saved) == []  # every field set: training it again is the same run


def test_validate_explain_data_shows_auto_reasons(tmp_path: Path) -> None:
    path = _write_table(tmp_path)
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {path.as_posix()!r}}}\n")
    runner = CliRunner()
    res = runner.invoke(app, ["validate", "--explain", "--data", str(cfg)],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "training.batch_size = 16  auto: 72 training rows" in res.output
    assert "training.epochs = 200  auto: a budget of 1000 steps at 5 steps per epoch" \
        in res.output
    plain = runner.invoke(app, ["validate", "--explain", str(cfg)], env={"COLUMNS": "200"})
    assert plain.exit_code == 0, plain.output
    assert "training.epochs = 20  auto: resolved from the data when training" in plain.output


# ---------------------------------------------------------------- robust normalization


def test_robust_is_fitted_on_train_only_and_clips_smoothly() -> None:
    x = torch.randn(200, 2)
    x[0, 0] = 1e6
    norm = Normalization.fit("robust", x)
    median = torch.from_numpy(np.median(x.numpy(), 0))  # the mean of the middle two
    assert torch.allclose(norm.shift, median, atol=1e-3)
    z = norm.apply(x)
    assert float(z.abs().max()) <= 3.0  # the outlier is squashed to the clip value
    assert torch.allclose(smooth_clip(torch.tensor([0.0, 3.0])), torch.tensor([0.0, 3 / 2**0.5]))
    assert torch.equal(norm.apply_(x.clone()), z)
    assert Normalization.from_json(norm.to_json()).clip


def test_robust_serving_agrees_with_training(tmp_path: Path) -> None:
    from fcnet_cli.engine.data.load import load_data
    from fcnet_cli.serve.model import load_model

    path, run_dir = _train_cli(tmp_path, data=", normalize: robust")
    model = load_model(run_dir)
    exp = load_experiment(run_dir / "config.yaml")
    data = load_data(exp.data)
    frame = pl.read_csv(path)
    # the training split's median is the shift: fitted on train rows only, not all rows
    assert not torch.allclose(model.spec.normalization.shift,
                              torch.tensor(frame.drop("label").median().row(0),
                                           dtype=torch.float32))
    proba = model.predict_proba(frame.drop("label"))  # raw columns through the module
    with torch.no_grad():
        mlp = model.module[1]
        test_logits = mlp(data.x_test)  # the training pipeline's normalized test rows
    expected = torch.softmax(test_logits, -1).numpy()
    rows = _test_rows(data, model, frame)
    assert np.abs(proba[rows] - expected).max() < 1e-5
    ev = CliRunner().invoke(app, ["eval", str(run_dir)])
    assert ev.exit_code == 0, ev.output


def _test_rows(data, model, frame: pl.DataFrame) -> list[int]:  # type: ignore[no-untyped-def]
    """Rows of `frame` whose normalized features equal the training pipeline's test rows."""
    feats = torch.from_numpy(model.features(frame.drop("label")))
    z = model.module[0](feats)
    rows = []
    for t in data.x_test:
        rows.append(int((z - t).abs().amax(1).argmin()))
    return rows


# ---------------------------------------------------------------- diagnostics


def test_diagnose_says_still_improving() -> None:
    loss = [1.0 * 0.9**e for e in range(20)]  # falling 10% per epoch to the end
    val = [1.1 * 0.92**e for e in range(20)]
    lines = diagnose(loss, val, [0.5] * 20, [0.5] * 20)
    assert len(lines) == 1 and lines[0].startswith("still improving:")
    assert "more epochs or a higher lr" in lines[0]


def test_diagnose_says_overfitting() -> None:
    loss = [1.0 * 0.7**e for e in range(20)]
    val = [0.8 - 0.05 * e for e in range(6)] + [0.55 + 0.05 * e for e in range(14)]
    lines = diagnose(loss, val, [0.6 + 0.02 * e for e in range(20)], [0.7] * 20)
    assert lines == [line for line in lines if line.startswith("overfitting:")] and lines
    assert "train accuracy 0.980 vs 0.700" in lines[0]
    # regression: the val loss far above the train loss
    assert diagnose(loss, val)[0].startswith("overfitting:")


def test_diagnose_is_silent_on_a_good_run() -> None:
    loss = [1.0, 0.5, 0.3, 0.25, 0.24, 0.235, 0.234, 0.2335, 0.2333, 0.2332]
    val = [1.1, 0.6, 0.4, 0.33, 0.32, 0.315, 0.316, 0.315, 0.316, 0.316]
    assert diagnose(loss, val, [0.9] * 10, [0.88] * 10) == []
    assert diagnose([1.0, 0.5], [1.0, 0.6]) == []  # too few epochs to measure a slope


def _noise_table(tmp_path: Path, n: int = 200) -> Path:
    """Labels independent of 10 features: whatever a net learns there is memorization."""
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({**{f"x{i}": rng.normal(size=n) for i in range(10)},
                          "label": rng.integers(0, 2, n)})
    path = tmp_path / "noise.csv"
    frame.write_csv(path)
    return path


def _train_output(tmp_path: Path, knobs: str, noise: bool = False) -> str:
    path = _noise_table(tmp_path) if noise else _write_table(tmp_path, 200)
    cfg = tmp_path / "d.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {path.as_posix()!r}}}\n{knobs}"
                   f"output: {{dir: {(tmp_path / 'runs').as_posix()!r}}}\n")
    res = CliRunner().invoke(app, ["train", str(cfg)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_an_underfit_run_ends_with_still_improving(tmp_path: Path) -> None:
    out = _train_output(tmp_path, "optimizer: {name: sgd, lr: 0.01}\n"
                                  "training: {epochs: 8, batch_size: 16, device: cpu}\n")
    assert "still improving: the training loss fell" in out
    assert "overfitting" not in out


@pytest.mark.slow
def test_an_overfit_run_ends_with_overfitting(tmp_path: Path) -> None:
    # a wide net memorizing labels that are noise: train accuracy → 1, the val loss climbs
    out = _train_output(tmp_path, "model: {hidden: [128, 128]}\n"
                                  "optimizer: {name: adam, lr: 0.01}\n"
                                  "training: {epochs: 15, batch_size: 16, device: cpu}\n",
                        noise=True)
    assert "overfitting: the val loss rose" in out, out[-1500:]
    assert "still improving" not in out


def test_a_good_run_ends_silently(tmp_path: Path) -> None:
    out = _train_output(tmp_path, "training: {epochs: 12, device: cpu}\n")  # the defaults
    assert "still improving" not in out and "overfitting" not in out


def test_robust_normalization_exports_with_the_model(tmp_path: Path) -> None:
    """The smooth clip is elementwise ops inside the serving module: ONNX (run by
    onnxruntime) and TorchScript compute what the module does."""
    import warnings

    import onnxruntime as ort

    from fcnet_cli.serve.model import load_model

    path, run_dir = _train_cli(tmp_path, data=", normalize: robust", epochs=1)
    model = load_model(run_dir)
    x = torch.from_numpy(model.features(pl.read_csv(path).drop("label")))
    x[0, 0] = 1e5  # far out: on the clipped part of the curve
    with torch.no_grad():
        expected = model.module(x).numpy()
    onnx_path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.module, (x[:2],), str(onnx_path), dynamo=True,
                          input_names=["features"], external_data=False, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
        scripted = torch.jit.script(model.module)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"features": x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-5
    with torch.no_grad():
        assert np.abs(scripted(x).numpy() - expected).max() < 1e-5


def test_an_ensemble_records_the_resolved_defaults(tmp_path: Path) -> None:
    path = _write_table(tmp_path)
    cfg = tmp_path / "e.yaml"
    cfg.write_text(f"data: {{dataset: csv, path: {path.as_posix()!r}}}\n"
                   f"model: {{hidden: [8], ensemble: 2}}\n"
                   f"training: {{epochs: 2, device: cpu}}\n"
                   f"output: {{dir: {(tmp_path / 'runs').as_posix()!r}}}\n")
    res = CliRunner().invoke(app, ["train", "-q", str(cfg)])
    assert res.exit_code == 0, res.output
    run_dir = Path(res.stdout.strip().splitlines()[-1])
    assert "#   training.batch_size: auto: 72 training rows" in \
        (run_dir / "config.yaml").read_text()
    saved = load_experiment(run_dir / "config.yaml")
    assert (saved.training.batch_size, saved.optimizer.name) == (16, "adamw")

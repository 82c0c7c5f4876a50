"""`model.ensemble_kind: shared` (BatchEnsemble): the maths against a plain MLP, a run served by
predict / eval / load_model / ONNX, reproducibility, resume refused, and the config checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from factories import experiment
from messy_tables import MESSY, train_run
from test_export_messy import predict_and_export
from test_resume import StopAt
from torch import nn
from torch.nn import functional as F
from typer.testing import CliRunner

from fcnet_cli import load_model
from fcnet_cli.cli import app
from fcnet_cli.config import ModelConfig, describe_schema
from fcnet_cli.engine.batchensemble import BatchEnsemble, BatchLinear
from fcnet_cli.engine.model import build_mlp, build_model, linear_indices
from fcnet_cli.engine.store.checkpoint import load_checkpoint
from fcnet_cli.engine.train.loop import train
from fcnet_cli.engine.train.losses import MemberLoss
from fcnet_cli.engine.train.sharedstep import make_optimizer, shared_step
from fcnet_cli.errors import UsageError
from fcnet_cli.events import Callback, EpochMetrics, RunResult, RunStart, StopToken

runner = CliRunner()
K = 3
SHARED: dict[str, Any] = {
    "data": {"dataset": "iris"},
    "model": {"hidden": [8], "dropout": 0.2, "ensemble": K, "ensemble_kind": "shared"},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "training": {"epochs": 3, "seed": 4},
}


def _shared_cfg(hidden: list[int], members: int, activation: str = "tanh") -> ModelConfig:
    """A shared ensemble's model section; K = 1 skips the config check (the maths allows it)."""
    cfg = ModelConfig.model_validate({"hidden": hidden, "activation": activation})
    return cfg.model_copy(update={"ensemble": members, "ensemble_kind": "shared"})


def _tie_to(net: BatchEnsemble, plain: nn.Sequential, *, freeze: bool = False) -> None:
    """r = s = 1, W = the plain network's weight, every member's bias = its bias."""
    lins = [plain[i] for i in linear_indices([0] * (len(net.layers) - 1), batch_norm=False)]
    with torch.no_grad():
        for layer, lin in zip(net.layers, lins, strict=True):
            assert isinstance(layer, BatchLinear) and isinstance(lin, nn.Linear)
            layer.weight.copy_(lin.weight)
            layer.bias.copy_(lin.bias.expand_as(layer.bias))
            layer.r.fill_(1.0)
            layer.s.fill_(1.0)
            if freeze:
                layer.r.requires_grad_(False)
                layer.s.requires_grad_(False)


def test_members_with_unit_scalings_are_the_plain_mlp_and_share_its_gradient() -> None:
    cfg = _shared_cfg([8, 6], K)
    torch.manual_seed(0)
    net = BatchEnsemble(cfg, 5, 4, regression=False)
    plain = build_mlp(ModelConfig(hidden=[8, 6], activation="tanh"), 5, 4)
    _tie_to(net, plain)
    x, y = torch.randn(11, 5), torch.randint(0, 4, (11,))
    z = net.members_forward(x)  # (K, 11, 4)
    want = plain(x)
    for k in range(K):
        torch.testing.assert_close(z[k], want, rtol=0, atol=1e-6)
    torch.testing.assert_close(net(x), torch.log_softmax(want, -1), rtol=0, atol=1e-6)
    # the training step's loss: the mean of the members' losses (lr 0: gradients only)
    out = shared_step(net, torch.optim.SGD(net.parameters(), lr=0.0),
                      MemberLoss("cross_entropy"), x, y)
    assert out is not None
    assert float(out[1]) == pytest.approx(float(F.cross_entropy(want, y)), abs=1e-6)
    F.cross_entropy(want, y).backward()
    for layer, i in zip(net.layers, (0, 3, 6), strict=True):
        assert isinstance(layer, BatchLinear) and layer.weight.grad is not None
        torch.testing.assert_close(layer.weight.grad, plain[i].weight.grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("optimizer", [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.05}])
def test_one_member_trains_like_a_plain_torch_mlp(optimizer: dict[str, Any],
                                                  tmp_path: Path) -> None:
    exp = experiment({"optimizer": optimizer, "model": {"hidden": [7]}}, tmp_path, "one")
    torch.manual_seed(1)
    net = BatchEnsemble(_shared_cfg([7], 1), 4, 3, regression=False)
    plain = build_mlp(ModelConfig(hidden=[7], activation="tanh"), 4, 3)
    _tie_to(net, plain, freeze=True)
    opt = make_optimizer(exp, net)
    o = exp.optimizer
    groups = [{"params": [plain[0].weight, plain[3].weight], "weight_decay": o.weight_decay},
              {"params": [plain[0].bias, plain[3].bias], "weight_decay": 0.0}]
    ref: torch.optim.Optimizer = (
        torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
        if o.name == "sgd" else torch.optim.AdamW(groups, lr=o.lr))
    g = torch.Generator().manual_seed(2)
    for _ in range(6):
        xb, yb = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
        out = shared_step(net, opt, MemberLoss("cross_entropy"), xb, yb)
        assert out is not None
        ref.zero_grad()
        F.cross_entropy(plain(xb), yb).backward()
        ref.step()
    x = torch.randn(20, 4, generator=g)
    torch.testing.assert_close(net.members_forward(x)[0], plain(x), rtol=0, atol=1e-5)
    layer = net.layers[0]
    assert isinstance(layer, BatchLinear)
    torch.testing.assert_close(layer.weight, plain[0].weight, rtol=0, atol=1e-5)


def test_signs_are_plus_or_minus_one_and_differ_between_members() -> None:
    torch.manual_seed(0)
    net = BatchEnsemble(_shared_cfg([16], 4), 6, 2, regression=False)
    layer = net.layers[0]
    assert isinstance(layer, BatchLinear)
    assert set(layer.r.detach().unique().tolist()) == {-1.0, 1.0}
    assert set(layer.s.detach().unique().tolist()) == {-1.0, 1.0}
    z = net.members_forward(torch.randn(5, 6))
    assert not torch.allclose(z[0], z[1])


def test_a_messy_table_run_is_served_alike_by_predict_eval_load_model_and_onnx(
        tmp_path: Path) -> None:
    """Penguins: text columns with empty cells (data.missing: median), an unseen category."""
    kind = MESSY["penguins"]
    run = train_run(tmp_path, kind, model="hidden: [8], ensemble: 3, ensemble_kind: shared")
    ckpt = load_checkpoint(run.run_dir)
    assert ckpt.meta["ensemble"] == 3 and ckpt.meta["ensemble_kind"] == "shared"
    shapes = {k: tuple(v.shape) for k, v in ckpt.state_dict.items()}
    n_in = ckpt.meta["in_features"]
    assert shapes == {"layers.0.weight": (8, n_in), "layers.0.r": (3, n_in),
                      "layers.0.s": (3, 8), "layers.0.bias": (3, 8),
                      "layers.1.weight": (3, 8), "layers.1.r": (3, 8),
                      "layers.1.s": (3, 3), "layers.1.bias": (3, 3)}  # one W per layer
    expected, sidecar, (proba, logits) = predict_and_export(run, tmp_path)
    assert sidecar["ensemble"] == 3
    assert float(np.abs(proba - expected).max()) <= 1e-5
    assert float(np.abs(np.exp(logits) - expected).max()) <= 1e-5
    model = load_model(run.run_dir)
    new = kind.frame(24, 11).drop(kind.target)  # the rows predict read, before their edits
    edited = 4  # test_export_messy.EDITS rewrites cells of the first rows
    assert float(np.abs(model.predict_proba(new)[edited:] - expected[edited:]).max()) <= 1e-5
    assert model.ensemble == 3 and len(model.member_modules) == 3
    x = torch.from_numpy(model.features(new))
    with torch.no_grad():
        members = np.stack([torch.softmax(m(x), -1).numpy() for m in model.member_modules])
    np.testing.assert_allclose(members.mean(0)[edited:], expected[edited:], atol=1e-5)
    result = runner.invoke(app, ["eval", str(run.run_dir), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["ensemble"] == {"members": 3, "kind": "shared"}
    assert got["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert got["loss"] == pytest.approx(summary["test"]["loss"], abs=1e-6)
    assert len(got["members"]["accuracy"]["values"]) == 3


def test_two_runs_with_one_seed_leave_identical_checkpoints(tmp_path: Path) -> None:
    a = train(experiment(SHARED, tmp_path, "a"))
    b = train(experiment(SHARED, tmp_path, "b"))
    assert a.status == b.status == "completed"
    wa = load_checkpoint(Path(str(a.run_dir))).state_dict
    wb = load_checkpoint(Path(str(b.run_dir))).state_dict
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(experiment(SHARED, tmp_path, "c", training={"seed": 5}))
    wc = load_checkpoint(Path(str(c.run_dir))).state_dict
    assert not torch.equal(wa["layers.0.weight"], wc["layers.0.weight"])
    rows = (Path(str(a.run_dir)) / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and "val_loss" in rows[0]


def test_pt2_export_averages_inside_the_program(tmp_path: Path) -> None:
    run = train(experiment(SHARED, tmp_path, "pt2"))
    out = tmp_path / "shared.pt2"
    result = runner.invoke(app, ["export", str(run.run_dir), "--format", "pt2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(str(run.run_dir))
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    program = torch.export.load(str(out)).module()
    got = program(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, model.proba_of(x), atol=1e-6)
    assert json.loads(out.with_name("shared.pt2.json").read_text())["ensemble"] == K


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_run_start(self, start: RunStart) -> None:
        self.events.append(("start", start.names))

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        self.events.append(("epoch", [(m.member, m.epoch) for m in metrics]))

    def on_member_end(self, member: int, result: RunResult) -> None:
        self.events.append(("end", (member, result.status)))


def test_events_and_the_cli_show_one_member_named_by_its_kind(tmp_path: Path) -> None:
    recorder = Recorder()
    train(experiment(SHARED, tmp_path, "events"), callbacks=[recorder])
    assert recorder.events == [("start", [f"shared ×{K}"]), ("epoch", [(0, 1)]),
                               ("epoch", [(0, 2)]), ("epoch", [(0, 3)]),
                               ("end", (0, "completed"))]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(experiment(SHARED, tmp_path, "cli").model_dump(mode="json")))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    assert f"training shared ×{K} on cpu" in result.output
    assert "members' test" in result.output and "±" in result.output


def test_tensorboard_logs_the_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    result = train(experiment(SHARED, tmp_path, "tb", output={"tensorboard": True}))
    assert list((Path(str(result.run_dir)) / "tensorboard").glob("events.out.tfevents.*"))


def test_an_interrupted_run_is_saved_and_its_resume_refused(tmp_path: Path) -> None:
    stop = StopToken()
    exp = experiment(SHARED, tmp_path, "stopped")
    first = train(exp, callbacks=[StopAt(stop, 2, 3)], stop=stop)
    assert first.status == "interrupted" and first.run_dir is not None
    run_dir = Path(first.run_dir)
    assert (run_dir / "checkpoints" / "best").is_dir()
    assert (run_dir / "checkpoints" / "last").is_dir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    with pytest.raises(UsageError, match="cannot be resumed; train it again") as err:
        train(exp, resume=run_dir)
    assert str(run_dir) in str(err.value)
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "cannot be resumed" in result.output


@pytest.mark.parametrize(("model", "message"), [
    ("{ensemble: 1, ensemble_kind: shared}", "shared needs model.ensemble of 2 or more"),
    ("{ensemble_kind: shared}", "shared needs model.ensemble of 2 or more"),
    ("{ensemble: {size: 4, select: greedy}, ensemble_kind: shared}",
     "cannot be combined with model.ensemble.select: greedy"),
    ("{ensemble: 4, batch_norm: true, ensemble_kind: shared}",
     "cannot be combined with batch_norm: true"),
    ("{ensemble: 4, ensemble_kind: shard}", "Input should be 'independent' or 'shared'"),
])
def test_config_errors_exit_2_with_one_line(model: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(f"data: {{dataset: iris}}\nmodel: {model}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "model.ensemble_kind" in result.output and message in result.output


def test_schema_lists_the_field() -> None:
    row = next(r for r in describe_schema() if r[0] == "model.ensemble_kind")
    assert "independent" in row[1] and "shared" in row[1] and row[2] == "independent"
    assert "BatchEnsemble" in row[3]
    cfg = _shared_cfg([4], 2)
    with torch.device("meta"):
        net = build_model(cfg, 3, 2)
    assert isinstance(net, BatchEnsemble)


def test_a_sweep_refuses_to_sweep_the_kind(tmp_path: Path) -> None:
    from fcnet_cli.config import ConfigError
    from fcnet_cli.sweep.load import load_sweep

    spec = tmp_path / "s.yaml"
    spec.write_text("base:\n  data: {dataset: iris}\n"
                    "parameters:\n  model.ensemble_kind: [independent, shared]\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(spec)
    assert any("model.ensemble_kind cannot be swept" in p for p in err.value.problems)

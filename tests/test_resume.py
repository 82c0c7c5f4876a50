"""Exact resume: a stopped and resumed run ends bit-identical to the uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import experiment

from fcnet_cli.config import ConfigError
from fcnet_cli.engine.store.checkpoint import load_checkpoint, load_train_state
from fcnet_cli.engine.train.loop import train
from fcnet_cli.engine.train.members import Member
from fcnet_cli.events import Callback, EpochMetrics, StopToken

RESUME: dict[str, Any] = {
    "data": {"dataset": "wine"},
    "model": {"hidden": [16, 8], "dropout": 0.2},
    "optimizer": {"name": "adam", "lr": 0.003},
    "scheduler": {"name": "plateau", "patience": 0, "threshold": 0.1},
    "training": {"epochs": 4, "seed": 7},
}


class StopAt(Callback):
    """Requests a stop after epoch `epoch`, batch `batch` (batch 0 = at the epoch's end)."""

    def __init__(self, stop: StopToken, epoch: int, batch: int):
        self.stop, self.epoch, self.batch = stop, epoch, batch

    def on_batch_end(self, progress: Any) -> None:
        if self.batch and (progress.epoch, progress.batch) == (self.epoch, self.batch):
            self.stop.request("SIGINT")

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if not self.batch and metrics[0].epoch == self.epoch:
            self.stop.request("SIGINT")


def history(run_dir: Path) -> list[dict[str, Any]]:
    state = load_train_state(run_dir / "checkpoints" / "last")
    return [{k: v for k, v in row.items() if k != "seconds"} for row in state["history"]]


def differences(a: Path, b: Path) -> list[str]:
    """Everything that differs between the final states of two runs (weights, optimizer,
    metrics history)."""
    out = []
    wa = load_checkpoint(a / "checkpoints" / "last").state_dict
    wb = load_checkpoint(b / "checkpoints" / "last").state_dict
    out += [k for k in wa if not torch.equal(wa[k], wb[k])]
    oa = load_train_state(a / "checkpoints" / "last")["optimizer"]
    ob = load_train_state(b / "checkpoints" / "last")["optimizer"]
    for i, (sa, sb) in enumerate(zip(oa["buffers"], ob["buffers"], strict=True)):
        out += [f"opt{i}.{n}" for n in sa if not torch.equal(sa[n], sb[n])]
    if history(a) != history(b):
        out.append("history")
    return out


def interrupted_then_resumed(tmp_path: Path, epoch: int, batch: int) -> Path:
    exp = experiment(RESUME, tmp_path, "resumed")
    stop = StopToken()
    first = train(exp, callbacks=[StopAt(stop, epoch, batch)], stop=stop)
    assert first.status == "interrupted"
    assert first.run_dir is not None
    run_dir = Path(first.run_dir)
    second = train(exp, resume=run_dir)
    assert second.status == "completed"
    assert [m.epoch for m in second.history] == [1, 2, 3, 4]
    return run_dir


@pytest.mark.parametrize("epoch,batch", [(2, 0), (2, 3)], ids=["epoch_boundary", "mid_epoch"])
def test_resume_is_bit_identical(tmp_path: Path, epoch: int, batch: int, products: str) -> None:
    full = train(experiment(RESUME, tmp_path, "full"))
    assert full.run_dir is not None
    resumed = interrupted_then_resumed(tmp_path, epoch, batch)
    assert differences(Path(full.run_dir), resumed) == []
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["products"] == [products] * 3


def test_negative_control_missing_rng_state_is_caught(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the dropout RNG state the same comparison must find differences."""
    full = train(experiment(RESUME, tmp_path, "full"))
    assert full.run_dir is not None
    original = Member.load_state

    def forgetful(self: Member, st: dict[str, Any], best: Any) -> None:
        original(self, {**st, "drop_gen": torch.Generator().manual_seed(1).get_state()}, best)

    monkeypatch.setattr(Member, "load_state", forgetful)
    resumed = interrupted_then_resumed(tmp_path, 2, 3)
    assert differences(Path(full.run_dir), resumed) != []


def test_resume_with_changed_config_is_refused(tmp_path: Path) -> None:
    exp = experiment(RESUME, tmp_path, "changed")
    stop = StopToken()
    first = train(exp, callbacks=[StopAt(stop, 1, 0)], stop=stop)
    assert first.run_dir is not None
    run_dir = Path(first.run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    changed = exp.model_copy(update={"optimizer": exp.optimizer.model_copy(update={"lr": 0.01})})
    with pytest.raises(ConfigError) as err:
        train(changed, resume=run_dir)
    assert any("optimizer.lr: 0.003 in the run, 0.01 now" in p for p in err.value.problems)
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert before == after  # nothing touched


def test_interrupted_run_records_status(tmp_path: Path) -> None:
    exp = experiment(RESUME, tmp_path, "status")
    stop = StopToken()
    r = train(exp, callbacks=[StopAt(stop, 1, 2)], stop=stop)
    assert r.status == "interrupted" and "SIGINT" in (r.reason or "")
    import json
    summary = json.loads((Path(r.run_dir or "") / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    st = load_train_state(Path(r.run_dir or "") / "checkpoints" / "last")
    assert (st["epoch"], st["batch"]) == (0, 2)  # 0-based epoch, next batch to run

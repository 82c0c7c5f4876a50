"""The CUDA epoch (engine/train/graphs.py): no host read inside an epoch, steps as CUDA graphs.

On the CPU its logic runs uncaptured (`FCNET_CUDA_GRAPHS=eager`) and must match the per-step
loop: bit for bit with SGD, to float tolerance with Adam (its step count is then a float64
tensor), and with the same divergence report. The CUDA tests run where a GPU is present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from factories import experiment

from fcnet_cli.config import Experiment
from fcnet_cli.engine.train.loop import train, train_population
from fcnet_cli.errors import UsageError
from fcnet_cli.events import RunResult

COLS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


GRAPHS: dict[str, Any] = {
    "data": {"dataset": "wine", "val_fraction": 0.2, "test_fraction": 0.2},
    "model": {"hidden": [16, 8], "dropout": 0.2},
    "loss": {"label_smoothing": 0.05},
    "regularization": {"type": "elastic_net", "strength": 2e-3, "l1_ratio": 0.3},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                  "weight_decay": 1e-3},
    "scheduler": {"name": "onecycle", "pct_start": 0.4},
    "training": {"epochs": 3, "seed": 3, "grad_clip": 1.0},
}


def rows(r: RunResult) -> list[tuple[float, ...]]:
    return [tuple(getattr(m, c) for c in COLS) for m in r.history]


def both(monkeypatch: pytest.MonkeyPatch, exps: list[Experiment]
         ) -> tuple[list[RunResult], list[RunResult]]:
    """(the per-step loop, the CUDA epoch uncaptured) on the same members."""
    monkeypatch.setenv("FCNET_CUDA_GRAPHS", "0")
    loop = train_population(exps)
    monkeypatch.setenv("FCNET_CUDA_GRAPHS", "eager")
    epoch = train_population(exps)
    return loop, epoch


def population(tmp_path: Path, **over: dict[str, Any]) -> list[Experiment]:
    lrs, drops = (0.05, 0.1, 0.02), (0.2, 0.0, 0.5)
    rest = {s: v for s, v in over.items() if s not in ("optimizer", "training")}
    return [experiment(GRAPHS, tmp_path / "runs", f"m{k}",
                       optimizer={**over.get("optimizer", {}), "lr": lr},
                     model={"dropout": p}, training={**over.get("training", {}), "seed": 3 + k},
                     **rest)
            for k, (lr, p) in enumerate(zip(lrs, drops, strict=True))]


def test_sgd_epoch_is_bit_identical_to_the_step_loop(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # wine: 107 training rows in batches of 16, so the last batch is partial
    loop, epoch = both(monkeypatch, population(tmp_path))
    for a, b in zip(loop, epoch, strict=True):
        assert a.status == b.status == "completed"
        assert rows(a) == rows(b)
        assert a.engine == b.engine == "explicit"


def test_adam_epoch_follows_the_step_loop(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    exps = population(tmp_path, optimizer={"name": "adamw", "weight_decay": 0.05,
                                           "momentum": 0.0, "nesterov": False},
                      scheduler={"name": "cosine"})
    loop, epoch = both(monkeypatch, exps)
    for a, b in zip(loop, epoch, strict=True):
        for ra, rb in zip(rows(a), rows(b), strict=True):
            assert rb == pytest.approx(ra, rel=1e-5, abs=1e-7)


def test_divergence_is_reported_at_its_step_and_spares_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exps = population(tmp_path, scheduler={"name": "none"}, training={"grad_clip": None})
    exps[1] = experiment(GRAPHS, tmp_path / "runs", "wild", optimizer={"lr": 1e30},
                         scheduler={"name": "none"},
                       training={"seed": 4, "grad_clip": None})
    loop, epoch = both(monkeypatch, exps)
    assert loop[1].status == epoch[1].status == "diverged"
    assert epoch[1].reason == loop[1].reason
    assert "step" in str(epoch[1].reason)
    assert rows(epoch[1]) == rows(loop[1])
    for k in (0, 2):
        assert epoch[k].status == "completed"
        assert rows(epoch[k]) == rows(loop[k])


def test_a_population_that_all_diverges_ends(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    exp = experiment(GRAPHS, tmp_path / "runs", "g", optimizer={"lr": 1e30},
                     scheduler={"name": "none"},
                   training={"grad_clip": None})
    loop, epoch = both(monkeypatch, [exp])
    assert epoch[0].status == "diverged"
    assert epoch[0].reason == loop[0].reason


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_needs_cuda(tmp_path: Path, precision: str) -> None:
    exp = experiment(GRAPHS, tmp_path / "runs", "g", training={"precision": precision})
    with pytest.raises(UsageError, match=f"training.precision {precision} needs a CUDA"):
        train(exp)


def test_precision_is_recorded(tmp_path: Path) -> None:
    r = train(experiment(GRAPHS, tmp_path / "runs", "g", training={"epochs": 1}))
    assert r.precision == "fp32"
    assert r.run_dir is not None
    assert '"precision": "fp32"' in (Path(r.run_dir) / "summary.json").read_text()


# ----------------------------------------------------------------------------- on CUDA

cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="no CUDA device: the captured CUDA epoch needs a GPU")


def on_cuda(exp: Experiment, **training: Any) -> Experiment:
    return exp.model_copy(update={"training": exp.training.model_copy(
        update={"device": "cuda", **training})})


@cuda
def test_cuda_graphs_follow_the_cuda_step_loop(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    exps = [on_cuda(e) for e in population(tmp_path)]
    monkeypatch.setenv("FCNET_CUDA_GRAPHS", "0")
    loop = train_population(exps)
    monkeypatch.setenv("FCNET_CUDA_GRAPHS", "1")
    graph = train_population(exps)
    for a, b in zip(loop, graph, strict=True):
        assert b.status == "completed"
        for ra, rb in zip(rows(a), rows(b), strict=True):
            assert rb == pytest.approx(ra, rel=1e-5, abs=1e-6)


@cuda
def test_cuda_epoch_has_no_host_synchronization(tmp_path: Path) -> None:
    from fcnet_cli.engine.train import graphs

    exp = on_cuda(experiment(GRAPHS, tmp_path / "runs", "g",
                             scheduler={"name": "step", "step_size": 1}),
                  epochs=3)
    real, seen = graphs.GraphEpoch._step, []

    def strict(self: Any, e: Any, last: bool) -> None:
        if self.graphs.get(last) is not None:  # a replay: any host read raises
            torch.cuda.set_sync_debug_mode("error")
            seen.append(last)
        try:
            real(self, e, last)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    graphs.GraphEpoch._step = strict  # type: ignore[method-assign]
    try:
        r = train(exp)
    finally:
        graphs.GraphEpoch._step = real  # type: ignore[method-assign]
    assert r.status == "completed"
    assert len(seen) > 10 and True in seen


@cuda
def test_cuda_divergence_spares_the_others(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    exps = population(tmp_path, scheduler={"name": "none"}, training={"grad_clip": None})
    exps[1] = experiment(GRAPHS, tmp_path / "runs", "wild", optimizer={"lr": 1e30},
                         scheduler={"name": "none"},
                       training={"seed": 4, "grad_clip": None})
    exps = [on_cuda(e) for e in exps]
    monkeypatch.setenv("FCNET_CUDA_GRAPHS", "0")
    loop = train_population(exps)
    monkeypatch.setenv("FCNET_CUDA_GRAPHS", "1")
    graph = train_population(exps)
    assert graph[1].status == "diverged" and graph[1].reason == loop[1].reason
    for k in (0, 2):
        assert graph[k].status == "completed"
        for ra, rb in zip(rows(loop[k]), rows(graph[k]), strict=True):
            assert rb == pytest.approx(ra, rel=1e-5, abs=1e-6)


@cuda
@pytest.mark.parametrize("precision,rel", [("fp32", 1e-4), ("tf32", 2e-2), ("bf16", 5e-2)])
def test_cuda_k1_follows_plain_pytorch(tmp_path: Path, precision: str, rel: float) -> None:
    """K = 1 on CUDA against the plain PyTorch loop of tests/test_oracle.py (on the CPU)."""
    from test_oracle import reference_run

    from fcnet_cli.engine.data.load import load_data

    exp = experiment(GRAPHS, tmp_path / "runs", "g", model={"dropout": 0.0},
                     scheduler={"name": "step",
                                                                 "step_size": 1})
    want, _ = reference_run(exp, load_data(exp.data))
    got = train(on_cuda(exp, precision=precision))
    assert got.precision == precision
    for g, w in zip(got.history, want, strict=True):
        assert g.train_loss == pytest.approx(w["train_loss"], rel=rel)
        assert g.val_loss == pytest.approx(w["val_loss"], rel=rel)
        assert g.lr == pytest.approx(w["lr"], rel=1e-6)


@cuda
def test_cuda_member_follows_its_standalone_run(tmp_path: Path) -> None:
    exps = [on_cuda(e) for e in population(tmp_path)]
    pop = train_population(exps)
    alone = train(exps[2])
    for ra, rb in zip(rows(pop[2]), rows(alone), strict=True):
        assert rb == pytest.approx(ra, rel=1e-4, abs=1e-6)


@cuda
@pytest.mark.parametrize("epoch,batch", [(2, 0), (2, 3)], ids=["epoch_boundary", "mid_epoch"])
def test_cuda_resume_is_bit_identical(tmp_path: Path, epoch: int, batch: int) -> None:
    """tests/test_resume.py's contract on CUDA: dropout, Adam and plateau, as captured."""
    from test_resume import RESUME, StopAt, differences

    from fcnet_cli.events import StopToken

    full = train(on_cuda(experiment(RESUME, tmp_path, "full")))
    exp = on_cuda(experiment(RESUME, tmp_path, "resumed"))
    stop = StopToken()
    first = train(exp, callbacks=[StopAt(stop, epoch, batch)], stop=stop)
    assert first.status == "interrupted" and first.run_dir is not None
    second = train(exp, resume=Path(first.run_dir))
    assert second.status == "completed"
    assert full.run_dir is not None
    assert differences(Path(full.run_dir), Path(first.run_dir)) == []

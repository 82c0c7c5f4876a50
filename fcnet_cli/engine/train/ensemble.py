"""`model.ensemble: N`: N members of one experiment trained as one population, kept as one model.

    runs/<name>/<run-id>/
      config.yaml          the experiment as it ran (model.ensemble: N)
      summary.json         status, the ensemble's test metrics and the members' mean ± std
      checkpoints/best/    ONE checkpoint: weights `members.<k>.<key>`, meta.json `ensemble: N`
      members/seed-<s>/    member k's own run directory (s = training.seed + k): metrics.csv,
                           summary.json, its best and last checkpoints (what resume reads)

Members write their records and checkpoints when they end, as sweep trials do (not every
epoch: N members would write N times as much); Ctrl-C or SIGTERM saves every unfinished
member's exact state for `--resume`, and an ensemble killed outright (SIGKILL) trains its
unfinished members again from epoch 1 on resume.

Member k is the experiment with `training.seed + k` and `model.ensemble: 1` (the seeds of
`training.seeds`): it trains exactly as that standalone run would (same initialization, data
order and dropout; early stopping on its own), so `members/seed-<s>/config.yaml` trains it
again alone. The ensemble predicts the mean of the members' best-state probabilities
(regression: of their predictions); see `engine.model.Ensemble`.

    result = train(load_experiment("experiments/wine.yaml", ["model.ensemble=8"]))  # engine.train
    model = load_model(result.run_dir)
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnet_cli.config import EnsembleConfig, Experiment, dump_experiment, layout_key
from fcnet_cli.engine.data.embedded import embed_splits
from fcnet_cli.engine.data.load import DataSplits
from fcnet_cli.engine.model import build_mlp
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.store import records as records
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.records import member_status, resumable_members
from fcnet_cli.engine.train.diversity import draw_members
from fcnet_cli.engine.train.finish import check_resume_config
from fcnet_cli.engine.train.select import ensemble_score, greedy_select
from fcnet_cli.engine.train.shared import train_shared
from fcnet_cli.errors import UsageError
from fcnet_cli.events import Callback, EpochMetrics, RunResult, StopToken

__all__ = ["by_layout", "ensemble_members", "is_ensemble_dir", "join_checkpoints",
           "member_dirs", "selection_line", "train_ensemble", "write_ensemble"]

# `engine.train.train_population`, handed in by `engine.train.train` (which calls this module)
Fit = Callable[..., list[RunResult]]


def ensemble_members(exp: Experiment) -> list[Experiment]:
    """The N member experiments: seeds seed, seed + 1, ..., each with `model.ensemble = 1`;
    with `select: greedy`, hyperparameters drawn as `engine.train.diversity` says."""
    if exp.model.ensemble_select == "greedy":
        return draw_members(exp)
    t, m = exp.training, exp.model
    return [exp.model_copy(update={"training": t.model_copy(update={"seed": t.seed + k}),
                                   "model": m.model_copy(update={"ensemble": 1})})
            for k in range(m.ensemble_size)]


def member_dirs(run_dir: Path, exp: Experiment) -> list[Path]:
    """The members' run directories, in member order."""
    return [RunDir(run_dir).member(exp.training.seed + k)
            for k in range(exp.model.ensemble_size)]


def is_ensemble_dir(path: Path) -> bool:
    return RunDir(path).is_ensemble()


def train_ensemble(exp: Experiment, fit: Fit, *, callbacks: Sequence[Callback] = (),
                   stop: StopToken | None = None, resume: Path | None = None,
                   data: DataSplits | None = None, run_dir: Path | None = None) -> RunResult:
    """Train `exp.model.ensemble` members as one population, then write the ensemble's
    checkpoint and summary; `resume` continues an ensemble's run directory (its unfinished
    members, which must have stopped at the same epoch). `data`: splits already loaded;
    `run_dir`: the ensemble's directory instead of a new one under `output.dir/name`.

    `fit` is `engine.train.train_population`: `train(exp)` calls this with it.
    Returns the ensemble's RunResult: its run directory, status, the ensemble's test metrics
    (with the members' in `test.members`) and each member's result in `members`.
    `model.ensemble_kind: shared` trains one weight-sharing network instead (engine.train.shared).
    """
    if exp.model.ensemble_kind == "shared":
        return train_shared(exp, fit, callbacks=callbacks, stop=stop, resume=resume, data=data,
                            run_dir=run_dir)
    started = time.perf_counter()
    members = ensemble_members(exp)
    histories: dict[str, list[EpochMetrics]] = {}  # by member run directory

    def fit_and_keep(exps: list[Experiment], **kw: Any) -> list[RunResult]:
        results = fit(exps, **kw)
        histories.update((str(d), r.history) for d, r in zip(kw["run_dirs"], results,
                                                               strict=True))
        return results
    with contextlib.ExitStack() as locks:
        if resume is None:
            if run_dir is None:
                run_dir = ck.new_run_dir(Path(exp.output.dir), exp.name)
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            locks.enter_context(ck.RunLock(run_dir))
            ck.atomic_write_text(RunDir(run_dir).config, dump_experiment(exp))
            dirs = member_dirs(run_dir, exp)
            for group in by_layout(members):  # one population per layout (width)
                if stop is not None and stop.requested:
                    break
                fit_and_keep([members[i] for i in group], callbacks=callbacks, stop=stop,
                             run_dirs=[dirs[i] for i in group], data=data,
                             eager_checkpoints=False)
        else:
            run_dir = Path(resume)
            check_resume_config(run_dir, exp)
            locks.enter_context(ck.RunLock(run_dir))
            dirs = member_dirs(run_dir, exp)
            _resume(members, dirs, run_dir, fit_and_keep, callbacks, stop, data)
        result = write_ensemble(run_dir, exp, time.perf_counter() - started, data)
        result.member_histories = [histories.get(str(d), []) for d in dirs]
        return result


def by_layout(members: Sequence[Experiment]) -> list[list[int]]:
    """Member indices grouped by layout (`config.layout_key`), in order of first member."""
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault(layout_key(m), []).append(i)
    return list(groups.values())


def _resume(members: list[Experiment], dirs: list[Path], run_dir: Path, fit: Fit,
            callbacks: Sequence[Callback], stop: StopToken | None,
            data: DataSplits | None) -> None:
    """Continue each layout's unfinished members (all of one layout stop at the same epoch);
    a layout none of whose members started trains from epoch 1."""
    groups = by_layout(members)
    fresh = [not any(RunDir(dirs[i]).config.is_file() for i in g) for g in groups]
    todo = {i for g, new in zip(groups, fresh, strict=True) if not new for i in g
            if member_status(dirs[i]) in records.RESUMABLE}
    if not todo and not any(fresh):
        resumable_members(run_dir, dirs, "member")  # raises: every member finished
    for group, new in zip(groups, fresh, strict=True):
        if stop is not None and stop.requested:
            break
        if new:
            fit([members[i] for i in group], callbacks=callbacks, stop=stop,
                run_dirs=[dirs[i] for i in group], data=data, eager_checkpoints=False)
            continue
        again = [i for i in group if i in todo]
        if not again:
            continue
        resumable_members(run_dir, [dirs[i] for i in again], "member")  # one epoch per layout
        for i in again:
            check_resume_config(dirs[i], members[i])
        fit([members[i] for i in again], callbacks=callbacks, stop=stop,
            run_dirs=[dirs[i] for i in again], resume=True, data=data,
            eager_checkpoints=False)


def _status(statuses: list[str], *, complete: bool) -> str:
    """interrupted > failed > diverged (every member) > completed; an ensemble without every
    member's best state failed."""
    if "interrupted" in statuses or "running" in statuses:
        return "interrupted"
    if "failed" in statuses or not complete:
        return "failed"
    if statuses and all(s == "diverged" for s in statuses):  # as one run that diverged: exit 3
        return "diverged"
    return "completed"


def _member_result(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(RunDir(run_dir).summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def write_ensemble(run_dir: Path, exp: Experiment, seconds: float = 0.0,
                   data: DataSplits | None = None) -> RunResult:
    """Join the members' best checkpoints into the ensemble's `checkpoints/best` (when every
    member has one) and write the ensemble's summary.json; return the ensemble's result.
    `select: greedy` keeps the members greedy selection chooses on the validation split of
    `data` (loaded from `exp.data` when None), with their weights."""
    dirs = member_dirs(run_dir, exp)
    statuses = [member_status(d) for d in dirs]
    bests = [RunDir(d).checkpoint(RunDir.BEST) for d in dirs]
    complete = all(b.is_dir() for b in bests)
    status = _status(statuses, complete=complete)
    joined = complete and status != "interrupted"
    summaries = [_member_result(d) for d in dirs]
    notices = [*(data.notices if data is not None else []), *(
        f"member {d.name} diverged; the ensemble uses its best checkpoint (before the "
        "divergence)" for d, s in zip(dirs, statuses, strict=True) if s == "diverged")]
    ensemble: dict[str, Any] = {
        "seeds": [exp.training.seed + k for k in range(exp.model.ensemble_size)],
        "dirs": [str(d.relative_to(run_dir)) for d in dirs], "status": statuses,
        "best_epoch": [s.get("best_epoch") for s in summaries],
        "seconds": [s.get("seconds") for s in summaries]}
    if joined and exp.model.ensemble_select == "greedy":
        ensemble["selection"] = _select(run_dir, exp, bests, data)
        notices.append(selection_line(ensemble["selection"]))
    elif joined:
        _save_checkpoint(run_dir, exp, bests)
    return _summarize(run_dir, exp, status, statuses, joined=joined, seconds=seconds,
                      notices=notices, ensemble=ensemble)


def _val_outputs(loaded: ck.LoadedCheckpoint, x: torch.Tensor, regression: bool) -> np.ndarray:
    """A member checkpoint's validation probabilities (N, C), or standardized predictions."""
    member = Experiment.model_validate(loaded.meta["config"])
    with torch.device("meta"):  # every tensor comes from the checkpoint
        net = build_mlp(member.model, loaded.meta["in_features"], loaded.meta["n_classes"])
    net.load_state_dict(loaded.state_dict, assign=True)
    with torch.no_grad():
        z = net.eval()(x)
    return (z if regression else torch.softmax(z, dim=-1)).double().numpy()


def _select(run_dir: Path, exp: Experiment, bests: list[Path],
            data: DataSplits | None) -> dict[str, Any]:
    """Greedy selection on the validation split (never the test split); save the selected
    members' checkpoint with their weights. Returns the summary's "selection" record."""
    if data is None:  # the inputs the members trained on, with their numerical embedding
        from fcnet_cli.engine.data.load import load_data

        data = embed_splits(load_data(exp.data, task=exp.task), exp.model, exp.data.split_seed)
    regression = data.task == "regression"
    x, y = data.x_val.cpu().float(), data.y_val.cpu().numpy()
    outputs = np.stack([_val_outputs(ck.load_checkpoint(b), x, regression) for b in bests])
    if regression:  # RMSE in the target's own units, as val_rmse
        target = data.preprocessing.target
        outputs = np.stack([target.unstandardize(o) for o in outputs]).astype(np.float64)
        y = target.unstandardize(y).astype(np.float64)
    assert isinstance(exp.model.ensemble, EnsembleConfig)
    chosen = greedy_select(outputs, y, exp.model.ensemble.selection_rounds,
                           regression=regression)
    picked = sorted(chosen.weights)
    _save_checkpoint(run_dir, exp, [bests[k] for k in picked],
                     [chosen.weights[k] for k in picked])
    alone = [ensemble_score(o, y, regression=regression) for o in outputs]
    return {"split": "val", "metric": "rmse" if regression else "log_loss",
            "rounds": len(chosen.order), "order": chosen.order, "scores": chosen.scores,
            "best_member": min(alone),
            "members": [{"member": k, "dir": str(bests[k].parent.parent.relative_to(run_dir)),
                         "weight": chosen.weights[k], "score": alone[k], **_hparams(bests[k])}
                        for k in picked]}


def _hparams(best: Path) -> dict[str, Any]:
    """What the distribution drew for a member, from its checkpoint's config."""
    cfg = json.loads((best / "meta.json").read_text(encoding="utf-8"))["config"]
    return {"seed": cfg["training"]["seed"], "lr": cfg["optimizer"]["lr"],
            "weight_decay": cfg["optimizer"]["weight_decay"],
            "dropout": cfg["model"]["dropout"], "hidden": cfg["model"]["hidden"],
            "label_smoothing": cfg["loss"]["label_smoothing"]}


def selection_line(selection: dict[str, Any]) -> str:
    """One line: which split chose, the score, and the selected members with weights."""
    metric = selection["metric"].replace("_", " ")
    members = ", ".join(f"{m['dir'].rsplit('/', 1)[-1]} {m['weight']:.3g}"
                        for m in selection["members"])
    n, rounds = len(selection["members"]), selection["rounds"]
    return (f"greedy selection on the {selection['split']} split: {n} member{'s' * (n > 1)} "
            f"in {rounds} round{'s' * (rounds > 1)}, {selection['split']} {metric} "
            f"{selection['scores'][-1]:.4f} (best single member {selection['best_member']:.4f})"
            f"; weights: {members}")


def join_checkpoints(run_dir: Path, exp: Experiment, checkpoints: Sequence[Path],
                     sources: Sequence[dict[str, Any]] = ()) -> RunResult:
    """An ensemble of checkpoints trained already (a sweep's top trials): one layout, one
    data set and preprocessing, hyperparameters free. `run_dir` (created, locked) gets
    config.yaml (`exp` with model.ensemble = len(checkpoints)), checkpoints/best and
    summary.json (`sources`: what each member is, recorded under "ensemble").

    Raises:
        UsageError: fewer than one checkpoint, or checkpoints that do not fit together.
    """
    if not checkpoints:
        raise UsageError("an ensemble needs at least one checkpoint")
    exp = exp.model_copy(update={"model": exp.model.model_copy(
        update={"ensemble": len(checkpoints)})})
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with ck.RunLock(run_dir):
        ck.atomic_write_text(RunDir(run_dir).config, dump_experiment(exp))
        epochs = _save_checkpoint(run_dir, exp, checkpoints)
        n = len(checkpoints)
        return _summarize(run_dir, exp, "completed", ["completed"] * n, joined=True, seconds=0.0,
                          notices=[], ensemble={
            "sources": list(sources) or [str(c) for c in checkpoints],
            "status": ["completed"] * n, "best_epoch": epochs})


def _summarize(run_dir: Path, exp: Experiment, status: str, statuses: list[str], *,
               joined: bool, seconds: float, notices: list[str],
               ensemble: dict[str, Any]) -> RunResult:
    """The ensemble's RunResult and summary.json: its test metrics (members' in `members`)."""
    from fcnet_cli.engine.evaluate import evaluate_checkpoint

    test = None
    if joined:
        with contextlib.suppress(UsageError):  # no test split (test_fraction: 0)
            test = evaluate_checkpoint(RunDir(run_dir).checkpoint(RunDir.BEST), "test",
                                       allow_changed_data=True)
            notices = list(test.notices) + notices
    result = RunResult(name=exp.name, run_dir=str(run_dir), status=status, history=[],
                       best_epoch=None, monitor=exp.training.early_stopping.monitor, test=test,
                       seconds=seconds, notices=notices, precision=exp.training.precision,
                       members=statuses, member_epochs=list(ensemble["best_epoch"]))
    data = records.summary(result)
    data["ensemble"] = {"members": exp.model.ensemble_size, **ensemble}
    ck.atomic_write_text(RunDir(run_dir).summary, json.dumps(data, indent=2))
    return result


JOINED_KEYS = ("in_features", "n_classes", "classes", "task", "normalization", "preprocessing")


def _save_checkpoint(run_dir: Path, exp: Experiment, bests: Sequence[Path],
                     weights: Sequence[float] | None = None) -> list[int | None]:
    """One checkpoint: member k's weights under `members.<k>.`, the first member's meta.json
    (data, preprocessing, classes: the same for every member) with the ensemble's config.
    `weights`: a selected ensemble, whose members may differ in width: meta.json also holds
    each member's model section (`member_models`) and weight (`member_weights`).
    Returns each member's epoch."""
    state: dict[str, torch.Tensor] = {}
    epochs: list[int | None] = []
    meta: dict[str, Any] = {}
    layout, seeds, models = None, [], []
    for k, best in enumerate(bests):
        loaded = ck.load_checkpoint(best)
        member = Experiment.model_validate(loaded.meta["config"])
        key = layout_key(member) if weights is None else None  # selected: widths may differ
        seeds.append(member.training.seed)
        models.append(member.model.model_dump(mode="json"))
        differs = [name for name in JOINED_KEYS if meta and loaded.meta.get(name) != meta.get(name)]
        if differs or (layout is not None and key != layout):
            what = differs[0] if differs else "layout (data, widths, activation, ...)"
            raise UsageError(f"cannot join {best} into an ensemble with {bests[0]}: its {what} "
                             "differs")
        layout = key
        state.update({f"members.{k}.{name}": v for name, v in loaded.state_dict.items()})
        epochs.append(loaded.meta.get("epoch"))
        meta = meta or dict(loaded.meta)
    meta.pop("sha256", None)
    meta.update({"config": exp.model_dump(mode="json"), "ensemble": len(bests),
                 "member_seeds": seeds,
                 "member_epochs": epochs, "epoch": None, "metrics": None,
                 "versions": records.versions()})
    if weights is not None:
        meta.update({"member_models": models, "member_weights": list(weights)})
    ck.save_checkpoint(run_dir, RunDir.BEST, state, meta)
    return epochs

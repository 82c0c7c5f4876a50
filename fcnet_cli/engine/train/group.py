"""`training.seeds: N`: N seeds of one experiment trained as one population, in a group folder.

    runs/<name>/<group-id>/
      group.json        what the group is: its config, seeds and member folders (+ statistics,
                        written by `analysis.groups.write_stats` once training ends)
      seed-0/ seed-1/   one ordinary run directory per seed (`fcnet eval` works on each)

Member i is the experiment with `training.seed = seed + i` and `training.seeds = 1`, so its
config.yaml trains the same run standalone (`fcnet train <group>/seed-3/config.yaml`).

    result = train_group(load_experiment("experiments/digits.yaml", ["training.seeds=5"]))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcnet_cli.config import Experiment, dump_experiment, validate_experiment
from fcnet_cli.engine.store import checkpoint as ck
from fcnet_cli.engine.store import records as records
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.engine.store.records import member_status, resumable_members
from fcnet_cli.engine.store.seedpick import is_group_dir
from fcnet_cli.engine.train.finish import check_resume_config
from fcnet_cli.engine.train.loop import train_population
from fcnet_cli.errors import UsageError
from fcnet_cli.events import Callback, GroupResult, RunResult, StopToken

__all__ = ["is_group_dir", "read_group", "seed_members", "train_group"]

GROUP_FORMAT = "fcnet-group"


def seed_members(exp: Experiment) -> list[Experiment]:
    """The N member experiments: seeds seed, seed + 1, ..., each with `training.seeds = 1`."""
    t = exp.training
    return [exp.model_copy(update={"training": t.model_copy(update={"seed": t.seed + i,
                                                                    "seeds": 1})})
            for i in range(t.seeds)]


def read_group(group_dir: Path) -> dict[str, Any]:
    """group.json as a dict. Raises UsageError when it is missing or unreadable."""
    try:
        data = json.loads(RunDir(group_dir).group.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{group_dir}: not a readable group directory ({e})") from None
    if not isinstance(data, dict) or data.get("format") != GROUP_FORMAT:
        raise UsageError(f"{RunDir(group_dir).group}: not an fcnet group file")
    return data


def _write_group(group_dir: Path, exp: Experiment, seeds: Sequence[int],
                 statuses: dict[str, str], reason: str | None = None) -> None:
    data = {"format": GROUP_FORMAT, "version": 1, "name": exp.name, "seeds": list(seeds),
            "runs": [RunDir.seed_name(s) for s in seeds], "status": statuses,
            "config": exp.model_dump(mode="json"), "versions": records.versions()}
    if reason is not None:
        data["reason"] = reason
    ck.atomic_write_text(RunDir(group_dir).group, json.dumps(data, indent=2))
    if not RunDir(group_dir).config.exists():  # what `fcnet train --resume GROUP` reads
        ck.atomic_write_text(RunDir(group_dir).config, dump_experiment(exp))


def train_group(exp: Experiment, *, callbacks: Sequence[Callback] = (),
                stop: StopToken | None = None, resume: Path | None = None) -> GroupResult:
    """Train `exp.training.seeds` seeds as one population; `resume` continues a group folder.

    On resume only the members that were interrupted train on; they must have stopped at the
    same epoch (one population steps in lock-step), otherwise this says so (UsageError).
    """
    if resume is not None:
        return _resume_group(exp, Path(resume), callbacks, stop)
    members = seed_members(exp)
    seeds = [m.training.seed for m in members]
    group_dir = ck.new_run_dir(Path(exp.output.dir), exp.name)
    dirs = [RunDir(group_dir).seed(s) for s in seeds]
    _write_group(group_dir, exp, seeds, dict.fromkeys((d.name for d in dirs), "training"))
    results = _train_recorded(group_dir, exp, seeds, dirs, members,
                              callbacks=callbacks, stop=stop, run_dirs=dirs)
    return GroupResult(exp.name, str(group_dir), seeds, results)


def _train_recorded(group_dir: Path, exp: Experiment, seeds: Sequence[int],
                    dirs: Sequence[Path], members: Sequence[Experiment],
                    statuses: dict[str, str] | None = None, **kwargs: Any
                    ) -> list[RunResult]:
    """`train_population(members, **kwargs)`, then each seed's final status in group.json.

    When training raises (bad data, disk full, an error mid-epoch), group.json still gets
    each seed's status as its summary.json records it (`failed` for a seed that never
    started) and the error's one line as `reason`, so the group never stays `training`.
    """
    statuses = dict(statuses or {})
    try:
        results = train_population(members, **kwargs)
    except BaseException as err:
        statuses.update({d.name: member_status(d) for d in dirs})
        why = " ".join(str(err).split()) or type(err).__name__
        _write_group(group_dir, exp, seeds, statuses, reason=why)
        raise
    statuses.update({d.name: r.status for d, r in zip(dirs, results, strict=True)})
    _write_group(group_dir, exp, seeds, statuses)
    return results


def _saved_config(group_dir: Path, data: dict[str, Any]) -> Experiment:
    from fcnet_cli.errors import ConfigError

    try:
        return validate_experiment(data.get("config"), origin=str(RunDir(group_dir).group))
    except ConfigError as e:
        raise UsageError(f"{RunDir(group_dir).group}: its config is not valid: "
                         f"{'; '.join(e.problems)}") from None


def _resume_group(exp: Experiment, group_dir: Path, callbacks: Sequence[Callback],
                  stop: StopToken | None) -> GroupResult:
    data = read_group(group_dir)
    saved = _saved_config(group_dir, data)
    if saved.training.seeds != exp.training.seeds:
        raise UsageError(f"cannot resume {group_dir} with {exp.training.seeds} seeds: the group "
                         f"has {saved.training.seeds} (resume it without --seeds, or start a "
                         "new group)")
    members = seed_members(exp)
    dirs = [RunDir(group_dir).seed(m.training.seed) for m in members]
    statuses = dict(data.get("status") or {})
    todo = resumable_members(group_dir, dirs, "seed", "; resume each seed's folder on its own "
                             "with fcnet train --resume")
    for i in todo:
        check_resume_config(dirs[i], members[i])
    seeds = [m.training.seed for m in members]
    results = _train_recorded(group_dir, saved, seeds, [dirs[i] for i in todo],
                              [members[i] for i in todo], statuses, callbacks=callbacks,
                              stop=stop, run_dirs=[dirs[i] for i in todo], resume=True)
    return GroupResult(exp.name, str(group_dir), [m.training.seed for m in members], results)

"""`fcnet train --seeds N`: the group folder, its statistics, members vs standalone runs, resume."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from factories import experiment
from typer.testing import CliRunner

from fcnet_cli.analysis.groups import group_stats, write_stats
from fcnet_cli.cli import app
from fcnet_cli.config import Experiment, load_experiment
from fcnet_cli.engine.train.group import seed_members, train_group
from fcnet_cli.engine.train.loop import train
from fcnet_cli.events import Callback, EpochMetrics, StopToken

runner = CliRunner()
T_975_DF2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (tables)


SEEDS: dict[str, Any] = {
    "data": {"dataset": "iris"}, "model": {"hidden": [8], "dropout": 0.2},
    "optimizer": {"lr": 0.05, "momentum": 0.9},
    "training": {"epochs": 3, "seed": 4, "seeds": 3},
}


def write_yaml(path: Path, exp: Experiment) -> Path:
    raw = exp.model_dump(mode="json")
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("group")
    result = train_group(experiment(SEEDS, out, "iris3"))
    return Path(result.group_dir)


def test_group_folder_holds_group_json_and_one_run_per_seed(group: Path) -> None:
    data = json.loads((group / "group.json").read_text())
    assert data["seeds"] == [4, 5, 6]
    assert data["runs"] == ["seed-4", "seed-5", "seed-6"]
    assert data["status"] == dict.fromkeys(data["runs"], "completed")
    assert data["config"]["training"]["seeds"] == 3
    for seed in (4, 5, 6):
        cfg = yaml.safe_load((group / f"seed-{seed}" / "config.yaml").read_text())
        assert cfg["training"]["seed"] == seed and cfg["training"]["seeds"] == 1
        assert (group / f"seed-{seed}" / "checkpoints" / "best" / "model.safetensors").is_file()


def test_statistics_match_a_hand_computation(group: Path) -> None:
    accs = [json.loads((group / f"seed-{s}" / "summary.json").read_text())["test"]["accuracy"]
            for s in (4, 5, 6)]
    mean = sum(accs) / 3
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / 2)
    half = T_975_DF2 * std / math.sqrt(3)
    stats = group_stats(group)
    s = stats.get("test_accuracy")
    assert s is not None and s.n == 3
    assert s.mean == pytest.approx(mean) and s.std == pytest.approx(std)
    assert (s.ci_low, s.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    names = [name for name, _ in stats.rows]
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(names)
    write_stats(stats)
    saved = json.loads((group / "group.json").read_text())["stats"]["test_accuracy"]
    assert saved["ci95"] == [pytest.approx(mean - half), pytest.approx(mean + half)]


def test_each_member_equals_its_standalone_run(group: Path, tmp_path: Path) -> None:
    members = seed_members(experiment(SEEDS, tmp_path, "iris3"))
    alone = train(members[1])  # seed 5, trained on its own
    assert alone.run_dir is not None
    a, b = metrics(Path(alone.run_dir)), metrics(group / "seed-5")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy", "l2_norm_0"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5, abs=1e-6), key


def test_cli_trains_a_group_and_prints_mean_std_and_interval(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "e.yaml", experiment(SEEDS, tmp_path / "runs", "iris3",
                                                      training={"seeds": 1, "epochs": 2}))
    result = runner.invoke(app, ["train", str(path), "--seeds", "2"])
    assert result.exit_code == 0, result.output
    assert "seed 4" in result.output and "seed 5" in result.output
    assert "±" in result.output and "95% interval" in result.output
    groups = list((tmp_path / "runs" / "iris3").iterdir())
    assert len(groups) == 1 and (groups[0] / "group.json").is_file()
    assert "stats" in json.loads((groups[0] / "group.json").read_text())


@pytest.mark.parametrize("value", ["0", "-1", "257"])
def test_bad_seed_counts_exit_2(tmp_path: Path, value: str) -> None:
    path = write_yaml(tmp_path / "e.yaml", experiment(SEEDS, tmp_path, "iris3",
                                                      training={"seeds": 1}))
    result = runner.invoke(app, ["train", str(path), "--seeds", value])
    assert result.exit_code == 2, result.output
    assert "--seeds must be between 1 and 256" in result.output
    assert "Traceback" not in result.output


def test_training_seeds_in_the_file_is_validated(tmp_path: Path) -> None:
    raw = experiment(SEEDS, tmp_path, "iris3").model_dump(mode="json")
    raw["training"]["seeds"] = 0
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(tmp_path / "e.yaml")])
    assert result.exit_code == 2 and "training.seeds" in result.output


class StopAfter(Callback):
    def __init__(self, stop: StopToken, epoch: int) -> None:
        self.stop, self.epoch = stop, epoch

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if metrics[0].epoch == self.epoch:
            self.stop.request("SIGINT")


def test_resume_continues_the_whole_group_or_says_why_not(tmp_path: Path) -> None:
    # loaded from a file, as the CLI does (data.root resolved next to it)
    exp = load_experiment(write_yaml(tmp_path / "e.yaml",
                                     experiment(SEEDS, tmp_path / "runs", "iris3",
                                                training={"seeds": 2, "epochs": 3})))
    stop = StopToken()
    stopped = train_group(exp, callbacks=[StopAfter(stop, 1)], stop=stop)
    assert stopped.status == "interrupted"
    gdir = stopped.group_dir
    wrong = runner.invoke(app, ["train", "--resume", gdir, "--seeds", "3"])
    assert wrong.exit_code == 2 and "the group has 2" in wrong.output
    single = runner.invoke(app, ["train", "--resume", str(Path(gdir) / "seed-4"),
                                 "--seeds", "2"])
    assert single.exit_code == 2 and "not a seed group" in single.output
    done = runner.invoke(app, ["train", "--resume", gdir])
    assert done.exit_code == 0, done.output
    status = json.loads((Path(gdir) / "group.json").read_text())["status"]
    assert status == {"seed-4": "completed", "seed-5": "completed"}
    whole = train_group(exp)  # the same group, never interrupted
    for seed in (4, 5):
        a, b = metrics(Path(gdir) / f"seed-{seed}"), metrics(Path(whole.group_dir) / f"seed-{seed}")
        assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]
    again = runner.invoke(app, ["train", "--resume", gdir])
    assert again.exit_code == 2 and "nothing to resume" in again.output


def test_compare_shows_one_row_per_group_with_mean_std_and_the_test(group: Path,
                                                                   tmp_path: Path) -> None:
    exp = experiment(SEEDS, tmp_path, "iris3", optimizer={"lr": 0.001})
    other = Path(train_group(exp).group_dir)
    out_csv = tmp_path / "c.csv"
    result = runner.invoke(app, ["compare", str(group), str(other), "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert "2 configurations, 6 runs" in result.output and "±" in result.output
    with out_csv.open(newline="") as f:
        rows = {r["optimizer.lr"]: r for r in csv.DictReader(f)}
    accs = [json.loads((group / f"seed-{s}" / "summary.json").read_text())["best"]
            ["val_accuracy"] for s in (4, 5, 6)]
    mine = rows["0.05"]
    assert float(mine["best_val_accuracy"]) == pytest.approx(sum(accs) / 3)
    assert mine["seeds"] == "3"
    assert {r["vs_best"] for r in rows.values()} & {"best"}
    loser = next(r for r in rows.values() if r["vs_best"] != "best")
    assert loser["vs_best"].startswith(("p ", "within noise"))

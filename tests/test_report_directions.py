"""Every report ranks a metric its own way, on real runs where the best configuration by a
lower-is-better metric (val_loss) and by a higher-is-better one (balanced accuracy) differ.

The data: an imbalanced binary table (12 % positives, overlapping classes). Without class
weights the network reaches the lower log loss by leaning on the majority class; with
`loss.class_weights: balanced` it has the clearly higher balanced accuracy. Two sweeps (one
per metric) and two seed groups of those two configurations are trained once for the module;
the expected best is read back from each run's summary.json with a rule written here, and every
report (compare table and CSV, the sweep leaderboard and leaderboard.csv, seed summaries) must
name it. Groups as single models: eval / predict / export on a group and on latest/seed-N.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.analysis import compare as report
from fcnet_cli.analysis import seedtable
from fcnet_cli.analysis.groups import best_seed, group_stats
from fcnet_cli.cli import app

runner = CliRunner()
GRID = {"loss.class_weights": ["none", "balanced"], "optimizer.lr": [0.03]}
LOWER, HIGHER = "val_loss", "val_balanced_accuracy"


def _table(path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.12).astype(int)
    x = rng.normal(size=(600, 2)) + np.where(y[:, None] == 1, 1.3, 0.0)
    rows = [f"{a:.4f},{b:.4f},{'yes' if t else 'no'}" for (a, b), t in zip(x, y, strict=True)]
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _base(tmp: Path) -> dict[str, Any]:
    return {"data": {"dataset": "csv", "path": str(_table(tmp / "imb.csv")), "target": "label"},
            "model": {"hidden": [8]}, "optimizer": {"name": "adam", "lr": 0.03},
            "training": {"epochs": 5, "batch_size": 32, "device": "cpu", "seeds": 1},
            "output": {"dir": str(tmp / "runs")}}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two sweeps (one per metric), two seed groups and a standalone repeat of one seed."""
    tmp = tmp_path_factory.mktemp("directions")
    base = _base(tmp)
    out: dict[str, Any] = {"tmp": tmp}
    for metric in (LOWER, HIGHER):
        spec = tmp / f"{metric}.yaml"
        spec.write_text(yaml.safe_dump({"name": f"by_{metric}", "base": base, "seeds": 2,
                                        "metric": metric, "parameters": GRID}))
        result = runner.invoke(app, ["sweep", str(spec), "--json"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, result.output
        out[metric] = json.loads(result.stdout)
    for weights in ("none", "balanced"):
        exp = {**base, "loss": {"class_weights": weights},
               "output": {"dir": str(tmp / "runs"), "name": f"g_{weights}"}}
        path = tmp / f"g_{weights}.yaml"
        path.write_text(yaml.safe_dump(exp))
        result = runner.invoke(app, ["train", str(path), "--seeds", "2", "-q"])
        assert result.exit_code == 0, result.output
        out[weights] = Path(result.stdout.strip().splitlines()[-1])
        out[f"{weights}_yaml"] = path
    alone = runner.invoke(app, ["train", str(out["none_yaml"]), "-q",  # seed 0 again
                                "--set", "output.name=alone"])
    assert alone.exit_code == 0, alone.output
    out["alone"] = Path(alone.stdout.strip().splitlines()[-1])
    return out


def _mean(run_dirs: list[Path], metric: str) -> float:
    return statistics.fmean(json.loads((d / "summary.json").read_text())["best"][metric]
                            for d in run_dirs)


def _expected_best(groups: dict[str, list[Path]], metric: str) -> str:
    """The best configuration by a rule written out here: lowest loss, highest accuracy."""
    means = {name: _mean(dirs, metric) for name, dirs in groups.items()}
    pick = min if metric == LOWER else max
    return pick(means, key=means.__getitem__)


def _sweep_groups(built: dict[str, Any], metric: str) -> dict[str, list[Path]]:
    folder = built["tmp"] / "runs" / f"by_{metric}"
    runs = report.load_runs([folder])
    return {w: [r.path for r in runs if r.config["loss.class_weights"] == w]
            for w in ("none", "balanced")}


def test_the_two_metrics_disagree_on_the_best_configuration(built: dict[str, Any]) -> None:
    # the premise of every test below; a report that ranks both metrics the same way (the
    # old `sign = -1 if metric == "val_accuracy"`) fails at least one of them
    groups = _sweep_groups(built, LOWER)
    assert _expected_best(groups, LOWER) == "none"
    assert _expected_best(groups, HIGHER) == "balanced"
    assert _mean(groups["balanced"], HIGHER) - _mean(groups["none"], HIGHER) > 0.1


@pytest.mark.parametrize("metric", [LOWER, HIGHER])
def test_compare_on_the_sweep_names_the_best_first_and_in_the_csv(built: dict[str, Any],
                                                                  metric: str) -> None:
    folder = built["tmp"] / "runs" / f"by_{metric}"
    out_csv = built["tmp"] / f"cmp_{metric}.csv"
    for other in (LOWER, HIGHER):  # each sweep compared by both metrics
        result = runner.invoke(app, ["compare", str(folder), "--metric", other, "--csv",
                                     str(out_csv)], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        with out_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
        expected = _expected_best(_sweep_groups(built, metric), other)
        assert rows[0]["loss.class_weights"] == expected and rows[0]["vs_best"] == "best"
        assert rows[1]["vs_best"] != "best"
        values = [float(r[f"best_{other}"]) for r in rows]
        assert values == sorted(values, reverse=other == HIGHER)
        way = "higher is better" if other == HIGHER else "lower is better"
        assert f"sorted by mean best {other} ({way})" in " ".join(result.stdout.split())
        # the test column is filled from summary.json (balanced accuracy under "metrics")
        assert all(r["test_" + other.removeprefix("val_")] not in ("", None) for r in rows)


@pytest.mark.parametrize("metric", [LOWER, HIGHER])
def test_compare_on_a_sweep_folder_uses_the_sweeps_metric(built: dict[str, Any],
                                                          metric: str) -> None:
    folder = built["tmp"] / "runs" / f"by_{metric}"
    result = runner.invoke(app, ["compare", str(folder)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"sorted by mean best {metric}" in " ".join(result.stdout.split())


@pytest.mark.parametrize("metric", [LOWER, HIGHER])
def test_the_leaderboard_ranks_by_the_metrics_direction(built: dict[str, Any],
                                                        metric: str) -> None:
    data = built[metric]
    assert data["direction"] == ("minimize" if metric == LOWER else "maximize")
    expected = _expected_best(_sweep_groups(built, metric), metric)
    assert data["best"]["params"]["loss.class_weights"] == expected
    values = [t["value"] for t in data["trials"]]
    assert values == sorted(values, reverse=metric == HIGHER)
    with (built["tmp"] / "runs" / f"by_{metric}" / "leaderboard.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    first = next(r for r in rows if r["rank"] == "1")
    assert first["vs_best"] == "best" and first["loss.class_weights"] == expected


def test_the_leaderboard_table_shows_vs_best(built: dict[str, Any]) -> None:
    spec = built["tmp"] / f"{HIGHER}.yaml"
    result = runner.invoke(app, ["sweep", str(spec)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output  # nothing left to train: the leaderboard
    lines = result.stdout.splitlines()
    header = next(ln for ln in lines if "vs best" in ln)
    assert "rank" in header
    assert "leaderboard (maximize val_balanced_accuracy)" in result.stdout
    row = next(ln for ln in lines if ln.strip().startswith("1 "))
    assert " best " in f"{row} " and "balanced" in row


@pytest.mark.parametrize("metric", [LOWER, HIGHER])
def test_compare_ranks_seed_groups_by_the_metrics_direction(built: dict[str, Any],
                                                            metric: str) -> None:
    runs = report.load_runs([built["none"], built["balanced"]])
    table = seedtable.compare_configs(runs, metric)
    groups = {w: [built[w] / d for d in ("seed-0", "seed-1")] for w in ("none", "balanced")}
    expected = _expected_best(groups, metric)
    assert table.rows[0]["loss.class_weights"] == expected
    assert table.rows[0]["vs_best"] == "best" and table.rows[1]["vs_best"] != "best"
    test_key = "test_" + metric.removeprefix("val_")
    assert all(row[test_key] == row[test_key] for row in table.rows)  # filled, not NaN


def test_a_repeated_seed_is_counted_once(built: dict[str, Any]) -> None:
    runs = report.load_runs([built["none"], built["balanced"], built["alone"]])
    table = seedtable.compare_configs(runs, LOWER)
    assert sorted(row["seeds"] for row in table.rows) == [2, 2]
    assert table.repeated == 1 and "1 run left out" in table.caption()
    result = runner.invoke(app, ["compare", str(built["none"]), str(built["balanced"]),
                                 str(built["alone"])], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "2 configurations, 4 runs" in result.stdout


def test_group_json_carries_every_metric_the_monitored_one_first(built: dict[str, Any]) -> None:
    stats = json.loads((built["none"] / "group.json").read_text())["stats"]
    names = list(stats)
    assert names[0] == "val_loss"  # the monitor of these runs
    for key in ("val_balanced_accuracy", "val_macro_f1", "test_balanced_accuracy",
                "test_macro_f1", "val_accuracy", "test_loss", "train_loss", "gap_accuracy"):
        assert stats[key]["n"] == 2, key
    monitored = group_stats(built["none"])
    assert monitored.rows[0][0] == monitored.monitor == "val_loss"


def test_a_group_summary_puts_a_monitored_balanced_accuracy_first(built: dict[str, Any]
                                                                  ) -> None:
    result = runner.invoke(app, ["train", str(built["balanced_yaml"]), "--seeds", "2",
                                 "--set", "training.epochs=2",
                                 "--set", "training.early_stopping.monitor=val_balanced_accuracy"],
                           env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    table = [ln.split() for ln in result.stdout.splitlines()]
    first = next(cells for cells in table if cells and cells[0].startswith(("val_", "test_")))
    assert first[:2] == ["val_balanced_accuracy", "◀"]


def test_eval_predict_export_on_a_group_use_its_best_seed(built: dict[str, Any],
                                                          tmp_path: Path) -> None:
    group = built["balanced"]
    chosen = best_seed(group)
    values = {d: json.loads((group / d / "summary.json").read_text())["best"]["val_loss"]
              for d in ("seed-0", "seed-1")}
    assert chosen.run_dir.name == min(values, key=values.__getitem__)  # loss: lowest
    result = runner.invoke(app, ["eval", str(group), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"] == str(chosen.run_dir / "checkpoints"
                                                          / "best")
    assert f"using {chosen.run_dir.name}, the best of 2 seeds by val_loss" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    pred = runner.invoke(app, ["predict", str(group), "--split", "test"])
    assert pred.exit_code == 0, pred.output
    assert pred.stdout.splitlines()[0] == "prediction" and len(pred.stdout.splitlines()) > 50
    out = tmp_path / "m.pt2"
    exported = runner.invoke(app, ["export", str(group), "--format", "pt2", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert out.is_file() and "seed group" in exported.stderr


def test_load_model_takes_a_group_and_latest_paths(built: dict[str, Any]) -> None:
    from fcnet_cli import load_model
    from fcnet_cli.engine.store.checkpoint import load_checkpoint
    from fcnet_cli.errors import CheckpointError

    group = built["none"]
    chosen = best_seed(group)
    frame = np.zeros((3, 2), dtype=np.float32)
    expected = load_model(chosen.run_dir).predict_proba(frame)
    assert np.array_equal(load_model(group).predict_proba(frame), expected)
    latest = built["tmp"] / "runs" / "g_none" / "latest"
    assert np.array_equal(load_model(latest).predict_proba(frame), expected)
    assert load_model(latest / "seed-0").predict_proba(frame).shape == (3, 2)
    with pytest.raises(CheckpointError, match="a seed group, not one checkpoint"):
        load_checkpoint(group)


def test_latest_resolves_through_a_seed_path(built: dict[str, Any]) -> None:
    latest = built["tmp"] / "runs" / "g_none" / "latest"
    seed = runner.invoke(app, ["eval", str(latest / "seed-1"), "--json"])
    assert seed.exit_code == 0, seed.output
    payload = json.loads(seed.stdout)
    newest = max((p for p in latest.parent.iterdir() if (p / "config.yaml").is_file()),
                 key=lambda p: p.name)
    assert payload["checkpoint"] == str(newest / "seed-1" / "checkpoints" / "best")
    missing = runner.invoke(app, ["eval", str(latest / "seed-9")])
    assert missing.exit_code == 2 and "no such file" in missing.output

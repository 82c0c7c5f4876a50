"""The metric registry (`fcnet_cli.metrics`) and the reports that rank, bound and label metrics
through it: per metric, each report puts the best run first and calls it best (with the
opposite metric as a negative control); intervals cut to bounds; repeated seeds counted once;
the live table and the run figure show the monitored metric; `compare --columns`."""

from __future__ import annotations

import math
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fcnet_cli import metrics
from fcnet_cli.analysis import compare as report
from fcnet_cli.analysis import plots, seedtable
from fcnet_cli.analysis.compare import RunRecord
from fcnet_cli.analysis.stats import summarize
from fcnet_cli.config import MAXIMIZED, METRICS, metric_mode
from fcnet_cli.errors import UsageError

MINIMIZED = ("val_loss", "val_rmse", "val_mae")


def test_every_monitorable_metric_has_a_direction_bounds_and_a_name() -> None:
    for name in METRICS:
        info = metrics.metric_info(name)
        assert info.higher_is_better == (name not in MINIMIZED), name
        assert metric_mode(name) == metrics.metric_mode(name) == info.mode
    assert set(MAXIMIZED) == set(METRICS) - set(MINIMIZED)
    assert (metrics.metric_info("test_accuracy").low, metrics.metric_info("val_macro_f1").high
            ) == (0.0, 1.0)
    assert metrics.metric_info("val_r2").high == 1.0 and metrics.metric_info("val_r2").low < -1e9
    assert metrics.metric_info("best_val_rmse").low == 0.0
    assert metrics.label("best_val_balanced_accuracy") == "best val bal acc"
    assert metrics.label("test_macro_f1") == "test F1"
    with pytest.raises(KeyError, match="unknown metric"):
        metrics.metric_info("val_speed")


def test_rank_key_puts_the_best_first_and_missing_values_last() -> None:
    values = [0.5, None, 0.9, math.nan, 0.1]
    assert metrics.best_first(values, "val_loss", value=lambda v: v)[:3] == [0.1, 0.5, 0.9]
    assert metrics.best_first(values, "val_accuracy", value=lambda v: v)[:3] == [0.9, 0.5, 0.1]
    assert metrics.is_better("val_rmse", 1.0, 2.0) and metrics.is_better("val_r2", 0.9, 0.1)
    assert not metrics.is_better("val_r2", None, 0.1) and metrics.is_better("val_r2", 0.1, None)


def _run(name: str, value: float, metric: str, seed: int = 0, lr: float = 0.1) -> RunRecord:
    key = metric.removeprefix("val_")
    test = {"loss": value, "accuracy": value} if key in ("loss", "accuracy") else {
        "metrics": {key: value}}
    summary = {"status": "completed", "best": {metric: value}, "test": test,
               "gap_at_best": {"accuracy": 0.01}, "best_epoch": 1, "last_epoch": 1}
    return RunRecord(Path(f"/runs/{name}"), summary, {"optimizer.lr": lr, "training.seed": seed},
                     [], name=name)


@pytest.mark.parametrize("metric", METRICS)
def test_each_report_names_the_best_run_for_each_metric(metric: str) -> None:
    # run b has the middle value, a the lowest, c the highest
    runs = [_run("b", 0.5, metric, lr=0.2), _run("a", 0.2, metric, lr=0.1),
            _run("c", 0.8, metric, lr=0.3)]
    best, worst = ("c", "a") if metric not in MINIMIZED else ("a", "c")
    table = report.compare(runs, metric)
    assert [r["name"] for r in table.rows] == [best, "b", worst]
    assert table.rows[0]["test_" + metric.removeprefix("val_")] is not None  # test column
    assert [r.name for r in plots.best_runs(runs, metric, 2)] == [best, "b"]
    # seeds: two per configuration, the same ordering of means
    seeded = [_run(f"{r.name}/seed-{s}", r.summary["best"][metric] + 0.01 * s, metric,
                   seed=s, lr=r.config["optimizer.lr"]) for r in runs for s in (0, 1)]
    configs = seedtable.compare_configs(seeded, metric)
    assert [row["name"] for row in configs.rows] == [best, "b", worst]
    assert configs.rows[0]["vs_best"] == "best"
    assert all(row["vs_best"] != "best" for row in configs.rows[1:])
    # negative control: the metric of the other direction orders the same runs the other way
    other = "val_loss" if metric not in MINIMIZED else "val_accuracy"
    flipped = [_run(r.name, r.summary["best"][metric], other, lr=r.config["optimizer.lr"])
               for r in runs]
    assert [r["name"] for r in report.compare(flipped, other).rows] == [worst, "b", best]


def test_a_two_seed_accuracy_interval_stays_in_zero_one_and_is_marked() -> None:
    raw = summarize([0.75, 0.85])
    assert raw.ci_high > 1 and not raw.clipped  # the plain t-interval goes past 1
    s = summarize([0.75, 0.85], "val_accuracy")
    assert s.ci_high == 1.0 and s.ci_low == pytest.approx(raw.ci_low) and s.clipped
    assert s.interval().endswith("1.0000]*")
    assert s.to_dict()["ci95_clipped"] is True and s.to_dict()["ci95"][1] == 1.0
    loss = summarize([0.05, 0.6], "test_loss")
    assert loss.ci_low == 0.0 and loss.clipped and loss.ci_high == pytest.approx(
        summarize([0.05, 0.6]).ci_high)
    r2 = summarize([0.9, 0.99], "val_r2")
    assert r2.ci_high == 1.0 and r2.clipped
    inside = summarize([0.80, 0.81, 0.82], "val_accuracy")
    assert not inside.clipped and not inside.interval().endswith("*")
    assert summarize([0.5], "val_accuracy").interval() == ""


def test_seed_tables_count_a_repeated_seed_once() -> None:
    runs = [_run("g/seed-0", 0.8, "val_accuracy", seed=0),
            _run("g/seed-1", 0.9, "val_accuracy", seed=1),
            _run("alone", 0.8, "val_accuracy", seed=0),  # seed 0 of the same configuration
            _run("h/seed-0", 0.5, "val_accuracy", seed=0, lr=0.2),
            _run("h/seed-1", 0.6, "val_accuracy", seed=1, lr=0.2)]
    assert [len(g) for _, g in seedtable.config_groups(runs)] == [2, 2]
    table = seedtable.compare_configs(runs, "val_accuracy")
    assert [row["seeds"] for row in table.rows] == [2, 2]
    assert table.rows[0]["best_val_accuracy"] == pytest.approx(0.85)
    assert "1 run left out: same configuration and seed" in table.caption()


def test_compare_columns_picks_columns_by_csv_name_or_header() -> None:
    runs = [_run(f"r{i}/seed-{s}", 0.5 + 0.1 * i + 0.01 * s, "val_accuracy", seed=s,
                 lr=0.1 * (i + 1)) for i in range(2) for s in range(2)]
    table = seedtable.compare_configs(runs, "val_accuracy")
    table.select(["ci95", "vs best", "gap acc"])
    assert table.headers() == ["run", "95% interval", "vs best", "gap acc"]
    assert table.priorities() == [0, 0, 0, 0]
    assert len(table.cells()[0]) == 4
    with pytest.raises(UsageError, match="no column 'nope'.*vs_best"):
        table.select(["nope"])


def test_compare_columns_on_the_command_line_at_70_columns(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fcnet_cli.cli import app

    runner = CliRunner()
    folder = tmp_path / "runs"
    for i, (lr, value) in enumerate(((0.1, 0.7), (0.2, 0.9))):
        for seed in (0, 1):
            d = folder / f"c{i}" / f"seed-{seed}"
            d.mkdir(parents=True)
            d.joinpath("config.yaml").write_text(
                f"optimizer:\n  lr: {lr}\ntraining:\n  seed: {seed}\n")
            d.joinpath("summary.json").write_text(
                '{"status": "completed", "best": {"val_accuracy": %s}, '
                '"gap_at_best": {"accuracy": 0.02}}' % (value + 0.01 * seed))
    plain = runner.invoke(app, ["compare", str(folder)], env={"COLUMNS": "70"})
    words = " ".join(plain.stdout.split())
    assert plain.exit_code == 0 and "not shown at 70 columns" in words
    assert "vs best" in words.split("not shown at 70 columns")[1]
    args = ["compare", str(folder), "--columns", "best_val_accuracy,95% interval,vs_best"]
    result = runner.invoke(app, args, env={"COLUMNS": "70"})
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert header == ["run", "best", "val", "acc", "95%", "interval", "vs", "best"]
    assert "not shown at" not in result.stdout and " best\n" in result.stdout
    bad = runner.invoke(app, ["compare", str(folder), "--columns", "speed"])
    assert bad.exit_code == 2 and "--columns: no column 'speed'" in bad.output


# ---------------------------------------------------------------- live table and figures


def _live_text(monitor: str, task: str = "classification") -> str:
    from fcnet_cli import display
    from fcnet_cli.events import EpochMetrics, RunStart

    buf = StringIO()
    live = display.LiveTrainDisplay(Console(file=buf, width=80, color_system=None))
    live.on_run_start(RunStart(["iris"], ["runs/iris/x"], 3, 5, 0, "cpu", 90, 30, 30, 4, 3,
                               task=task, monitor=monitor))
    live.on_epoch_end([EpochMetrics(0, 1, 0.5, 0.8, 0.6, 0.7, 0.01, 0.5, metrics={
        "val_balanced_accuracy": 0.6123, "val_macro_f1": 0.5987})])
    live.close()
    return buf.getvalue()


def test_the_live_table_shows_the_monitored_metric() -> None:
    text = _live_text("val_balanced_accuracy")
    assert "val bal acc" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("1/3"))
    assert "0.6123" in row.split() and "0.5987" not in row
    assert "val bal acc" not in _live_text("val_loss")  # loss and accuracy have their columns
    assert "val F1" in _live_text("val_macro_f1")


def _record(regression: bool, monitor: str, layers: tuple[str, ...] = ("0", "3", "6")
            ) -> RunRecord:
    rows: list[dict[str, float]] = []
    for epoch in (1, 2, 3):
        row = {"epoch": float(epoch), "train_loss": 1.0 / epoch, "val_loss": 1.1 / epoch,
               "lr": 0.1, "gap_loss": 0.1 / epoch}
        if regression:
            row.update(train_accuracy=math.nan, val_accuracy=math.nan, gap_accuracy=math.nan,
                       val_rmse=2.0 / epoch, val_mae=1.5 / epoch, val_r2=0.2 * epoch)
        else:
            row.update(train_accuracy=0.5 + 0.1 * epoch, val_accuracy=0.4 + 0.1 * epoch,
                       gap_accuracy=0.1, val_balanced_accuracy=0.3 + 0.1 * epoch)
        for layer in layers:
            row.update({f"l2_norm_{layer}": 1.0, f"sparsity_{layer}": 0.1})
        rows.append(row)
    summary: dict[str, Any] = {"name": "x", "status": "completed", "best_epoch": 3,
                               "monitor": monitor}
    return RunRecord(Path("/runs/x/1"), summary, {"regularization.type": "l2"}, rows, 4, 1)


def _legends(fig: Any) -> list[list[str]]:
    return [[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
            for ax in fig.axes]


def test_the_regression_figure_draws_only_what_it_has(monkeypatch: pytest.MonkeyPatch) -> None:
    figures: list[Any] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    plots.plot_run(_record(True, "val_mae"), "r.png")
    legends = _legends(figures[0])
    assert legends[1][:1] == ["val mae"]  # the monitored metric, no train line
    assert not any("train rmse" in t or "train mae" in t for t in legends[1])
    assert "train − val accuracy" not in legends[3] and "val − train loss" in legends[3]
    assert len(figures[0].axes[1].get_lines()) == 2  # val mae and the best-epoch marker
    assert legends[4] == legends[5] == ["layer 1", "layer 2", "layer 3"]  # not 0 / 3 / 6


def test_the_figure_shows_a_monitored_balanced_accuracy(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    figures: list[Any] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    plots.plot_run(_record(False, "val_balanced_accuracy"), "c.png")
    acc = figures[0].axes[1]
    assert "val bal acc" in [t.get_text() for t in acc.get_legend().get_texts()]
    assert acc.get_title() == "accuracy; monitored: val bal acc"
    plots.plot_run(_record(False, "val_loss"), "d.png")
    assert figures[1].axes[1].get_title() == "accuracy"

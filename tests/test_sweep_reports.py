"""What a sweep prints and draws, on one real tiny sweep: --top with --json, no ± for one seed,
the resume hint, compare on the sweep folder (dotted headers, importances of swept parameters,
best-N curves), sweep and run figures; every table at 80 and 120 columns."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from fcnet_cli import display
from fcnet_cli.analysis import compare as report
from fcnet_cli.analysis import plots
from fcnet_cli.analysis.importances import param_importances
from fcnet_cli.cli import app

runner = CliRunner()
PARAMS: dict[str, Any] = {
    "optimizer.momentum": [0.0, 0.9], "regularization.type": ["none", "l2"],
    "regularization.strength": [1.0e-4, 1.0e-2], "optimizer.name": ["sgd"],
    "training.epochs": [3]}
SWEPT = ["optimizer.momentum", "regularization.type", "regularization.strength"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """(sweep file, sweep folder, `--json --top 3` output) of a 6-configuration grid."""
    tmp = tmp_path_factory.mktemp("sweep")
    base = {"data": {"dataset": "iris"}, "model": {"hidden": [8]},
            "optimizer": {"name": "sgd", "lr": 0.1},
            "training": {"epochs": 3, "batch_size": 16, "device": "cpu"},
            "output": {"dir": str(tmp / "runs")}}
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump({"name": "grid", "base": base, "seeds": 1,
                                    "parameters": PARAMS}, sort_keys=False))
    result = runner.invoke(app, ["sweep", str(path), "--top", "3", "--json",
                                 "--set", "base.training.epochs=2"])
    assert result.exit_code == 0, result.output
    assert "replaces the pinned parameter training.epochs: [3]" in result.stderr
    return path, tmp / "runs" / "grid", json.loads(result.stdout)


def test_json_respects_top(swept: tuple[Path, Path, dict[str, Any]]) -> None:
    _, _, data = swept
    assert data["counts"]["done"] == 6
    assert len(data["trials"]) == 3 and data["trials_omitted"] == 3
    values = [t["value"] for t in data["trials"]]
    assert values == sorted(values, reverse=True) and data["best"] == data["trials"][0]
    assert data["swept"] == SWEPT  # the pinned ones are not swept
    assert all(len(t["best_epochs"]) == 1 and t["best_epochs"][0] <= 2 for t in data["trials"])


def test_one_seed_has_no_plus_minus(swept: tuple[Path, Path, dict[str, Any]]) -> None:
    path, _, _ = swept
    result = runner.invoke(app, ["sweep", str(path), "--set", "base.training.epochs=2",
                                 "--top", "2"])
    assert result.exit_code == 0, result.output  # resumed: nothing left to train
    assert "±" not in result.stdout
    assert "val_accuracy" in result.stdout and "4 more in leaderboard.csv" in result.stdout


def test_interrupt_hint_repeats_the_whole_command(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  swept: tuple[Path, Path, dict[str, Any]]
                                                  ) -> None:
    from fcnet_cli.sweep import run as sweep_run

    path, _, _ = swept
    real = sweep_run.run_sweep

    def interrupted(spec: Any, **kw: Any) -> Any:
        kw["stop"].request("SIGINT")
        return real(spec, **kw)

    monkeypatch.setattr(sweep_run, "run_sweep", interrupted)
    result = runner.invoke(app, ["sweep", str(path), "-s", "base.training.epochs=2",
                                 "--threads", "1", "--quiet"])
    assert result.exit_code == 130
    assert f"resume with: fcnet sweep {path} --set base.training.epochs=2 --threads 1" \
        in result.stderr


def test_compare_on_a_sweep_folder(swept: tuple[Path, Path, dict[str, Any]],
                                   tmp_path: Path) -> None:
    _, folder, _ = swept
    png = tmp_path / "curves.png"
    result = runner.invoke(app, ["compare", str(folder), "--plot", str(png), "--best", "3"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    runs = report.load_runs([folder])
    headers = report.compare(runs).headers()
    assert len(set(headers)) == len(headers) and "name" not in headers
    assert set(SWEPT) <= set(headers)
    lines = result.stdout.splitlines()
    rule = next(i for i, ln in enumerate(lines) if ln.startswith("───"))
    first, second = lines[rule - 2].split(), lines[rule - 1].split()
    assert "optimizer." in first and "regularization." in first  # dotted names, two lines
    assert {"momentum", "type", "strength"} <= set(second)
    found = param_importances(folder, runs, "val_accuracy", report.swept_params(folder, runs))
    assert found is not None
    assert {name for name, _ in found.rows} == set(SWEPT)  # strength kept, pins left out
    assert "training.epochs" not in result.stdout.split("parameter importances")[1]
    assert png.read_bytes().startswith(b"\x89PNG")


def test_best_curves_are_labelled_by_their_values(swept: tuple[Path, Path, dict[str, Any]]
                                                  ) -> None:
    _, folder, data = swept
    runs = report.load_runs([folder])
    best = plots.best_runs(runs, "val_accuracy", 3)
    assert [report.metric_value(r, "val_accuracy") for r in best] == pytest.approx(
        [t["value"] for t in data["trials"]])
    label = plots.run_label(best[0], SWEPT)
    assert label.startswith("momentum=") and " type=" in label and " strength=" in label


def _figure_of(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    figures: list[Any] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    return figures


def test_sweep_figure_has_one_panel_per_swept_parameter_with_a_legend(
        swept: tuple[Path, Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder, _ = swept
    figures = _figure_of(monkeypatch)
    runs = report.load_runs([folder])
    plots.plot_sweep(runs, report.swept_params(folder, runs), folder / "s.png")
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in axes] == SWEPT
    for ax in axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "one run (jittered)", "mean over runs"]


def test_jitter_is_small_seeded_and_keeps_the_mean_line() -> None:
    xs = [1.0, 1.0, 1.0, 2.0, 2.0]
    moved = plots.jitter(xs, 0.1, log=False)
    assert moved == plots.jitter(xs, 0.1, log=False)
    assert len(set(moved)) == 5 and all(abs(a - b) <= 0.1 for a, b in zip(moved, xs, strict=True))
    logged = plots.jitter([1e-3, 1e-3], 0.03, log=True)
    assert all(10 ** -0.03 <= v / 1e-3 <= 10 ** 0.03 for v in logged)


def test_run_figure_gap_lr_and_weights(swept: tuple[Path, Path, dict[str, Any]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder, _ = swept
    runs = report.load_runs([folder])
    l2 = next(r for r in runs if r.config["regularization.type"] == "l2")
    plain = next(r for r in runs if r.config["regularization.type"] == "none")
    figures = _figure_of(monkeypatch)
    plots.plot_run(l2, "a.png")
    plots.plot_run(plain, "b.png")
    titles = [[ax.get_title() for ax in fig.axes] for fig in figures]
    assert len(titles[0]) == 6 and len(titles[1]) == 4
    assert "‖W‖₂ per layer" in titles[0] and any("|w| < 1e-3 (l2)" in t for t in titles[0])
    lr_axis = figures[1].axes[2]  # lr 0.1 throughout: an axis from 0, not 0.098–0.102
    assert lr_axis.get_ylim() == pytest.approx((0.0, 0.15))
    assert lr_axis.get_title() == "learning rate: constant 0.1"


def test_gap_limits_ignore_epoch_one() -> None:
    acc = [-1.08, 0.02, 0.03, 0.05]
    loss = [0.9, 0.01, -0.02, 0.04]
    lo, hi = plots.gap_limits(acc, loss) or (0, 0)
    assert -0.03 < lo < -0.02 and 0.05 < hi < 0.06
    assert plots.gap_limits([0.1]) is None


# ---------------------------------------------------------------- 80 and 120 columns


def _console(width: int) -> tuple[Console, StringIO]:
    buf = StringIO()
    return Console(file=buf, width=width, color_system=None), buf


def _check_fits(text: str, width: int) -> None:
    assert "…" not in text, text
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), text


@pytest.mark.parametrize("width", [80, 120])
def test_leaderboard_and_comparison_fit(swept: tuple[Path, Path, dict[str, Any]],
                                        width: int) -> None:
    from fcnet_cli.sweep.run import collect, load_sweep
    from fcnet_cli.sweep.store import open_store

    path, folder, _ = swept
    spec = load_sweep(path, ["base.training.epochs=2"])
    result = collect(spec, open_store(spec))
    out, buf = _console(width)
    display.render_leaderboard(out, result, top=10)
    table = report.compare(report.load_runs([folder]))
    display.render_comparison(out, table.headers(), table.cells(), caption=table.caption(),
                              priorities=table.priorities())
    text = buf.getvalue()
    _check_fits(text, width)
    for head in ("rank", "val_accuracy", "optimizer.", "momentum", "best val acc",
                 "test acc"):
        assert head in text
    if width == 80:
        assert "not shown at 80 columns:" in text
    else:
        assert "strength" in text and "not shown at 120 columns: epochs, gap loss" in text


@pytest.mark.parametrize("width", [80, 120])
def test_live_epoch_table_fits(width: int) -> None:
    from fcnet_cli.events import EpochMetrics, RunStart

    out, buf = _console(width)
    live = display.LiveTrainDisplay(out)
    live.on_run_start(RunStart(["digits"], ["runs/digits/x"], 30, 34, 0, "cpu", 1078, 359,
                               360, 64, 10))
    live.on_epoch_end([EpochMetrics(0, 12, 0.123456, 0.98765, 0.2345, 0.95, 1.2345e-05,
                                    12.5)])
    live.close()
    text = buf.getvalue()
    _check_fits(text, width)
    row = next(ln for ln in text.splitlines() if ln.startswith("12/30"))
    assert row.split() == ["12/30", "0.1235", "0.9877", "0.2345", "0.9500", "+0.0377",
                           "1.234e-05", "12.50s"]
    assert "gap = train acc − val acc" in text

"""Sweep rendering: the final leaderboard and the progress lines, to an in-memory console."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from fcnet_cli import display
from fcnet_cli.events import RunStart, SweepResult, SweepUpdate, TrialResult


def trial(number: int, value: float | None, state: str = "complete", **kw: object) -> TrialResult:
    base: dict[str, object] = dict(
        number=number, params={"optimizer.momentum": 0.9, "model.hidden": [64, 32]}, seed=0,
        state=state, value=value, run=None, std=0.01, values=[value or 0.0] * 2,
        best_epochs=[4, 6], gap=0.02, seconds=3.5,
        checkpoint=f"runs/s/trials/{number:04d}-seed0/checkpoints/best", status=state)
    base.update(kw)
    return TrialResult(**base)  # type: ignore[arg-type]


def console() -> tuple[Console, StringIO]:
    buf = StringIO()
    return Console(file=buf, width=100, color_system=None), buf


def result() -> SweepResult:
    return SweepResult(
        name="s", sweep_dir="runs/s", metric="val_accuracy", direction="maximize",
        trials=[trial(3, 0.97), trial(1, 0.95), trial(2, 0.5, "pruned"),
                trial(0, None, "fail", status="diverged", reason="non-finite loss at epoch 2")],
        swept=["optimizer.momentum", "model.hidden"],
        counts={"done": 2, "pruned": 1, "failed": 1, "running": 0, "interrupted": 0},
        total=4)


def test_leaderboard_ranks_completed_trials_and_names_the_best_checkpoint() -> None:
    out, buf = console()
    display.render_leaderboard(out, result(), top=10)
    text = buf.getvalue()
    assert "trials 4/4: 2 done, 0 running, 1 pruned, 1 failed" in text
    assert "0.9700 ± 0.0100" in text and "0.9500 ± 0.0100" in text
    assert text.index("0.9700") < text.index("0.9500")
    assert "momentum" in text and "[64, 32]" in text and "4–6" in text
    assert "trial 0 diverged: non-finite loss at epoch 2" in text
    assert "best trial 3" in text and "runs/s/trials/0003-seed0/checkpoints/best" in text


def test_top_limits_the_rows() -> None:
    out, buf = console()
    display.render_leaderboard(out, result(), top=1)
    assert "0.9500" not in buf.getvalue() and "1 more in leaderboard.csv" in buf.getvalue()


def test_progress_lines_on_a_pipe() -> None:
    out, buf = console()
    live = display.SweepDisplay(out)
    assert not live.live_mode
    live.on_run_start(RunStart(["a", "b"], [None, None], 3, 5, 0, "cpu", 90, 30, 30, 4, 3))
    live.on_sweep_update(SweepUpdate({"done": 1, "running": 2}, 6, [trial(5, 0.9)],
                                     "val_accuracy", ["optimizer.momentum"],
                                     "population of 4 members: 2 trials × 2 seeds"))
    live.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "population of 4 members: 2 trials × 2 seeds"
    assert lines[1].startswith("trials 1/6: 1 done, 2 running")
    assert "best so far: trial 5 val_accuracy 0.9000 ± 0.0100" in lines[1]

"""The sweep's live progress and its leaderboard."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fcnet_cli.analysis.stats import verdict
from fcnet_cli.display.base import (
    _kv_grid,
    is_terminal,
)
from fcnet_cli.display.fit import Col, fit_table
from fcnet_cli.events import (
    FINAL_FAILS,
    BatchProgress,
    Callback,
    EpochMetrics,
    RunStart,
    SweepResult,
    SweepUpdate,
    TrialResult,
)


def _value_cell(v: object) -> str:
    if isinstance(v, float):
        return format(v, ".4g")
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)


def _counts_line(counts: dict[str, int], total: int | None) -> str:
    finished = counts.get("done", 0) + counts.get("pruned", 0) + counts.get("failed", 0)
    head = f"trials {finished}/{total}" if total else f"trials {finished}"
    parts = [f"{counts.get(k, 0)} {k}" for k in ("done", "running", "pruned", "failed")]
    if counts.get("interrupted"):
        parts.append(f"{counts['interrupted']} interrupted (re-run)")
    return f"{head}: " + ", ".join(parts)


def _mean_std(t: TrialResult) -> str:
    """`0.9731 ± 0.0040` over seeds; one seed has no spread to show."""
    if t.value is None:
        return "—"
    if len(t.values) <= 1:
        return f"{t.value:.4f}"
    return f"{t.value:.4f} ± {t.std or 0.0:.4f}"


def _vs_best(t: TrialResult, best: TrialResult) -> str:
    """Welch t-test of a trial's seeds against the top trial's (analysis.stats)."""
    if t is best:
        return "best"
    return verdict(t.values, best.values).replace("untested (1 seed)", "1 seed")


def _epochs_cell(epochs: Sequence[int]) -> str:
    if not epochs:
        return "—"
    lo, hi = min(epochs), max(epochs)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def leaderboard_table(trials: Sequence[TrialResult], metric: str, swept: Sequence[str],
                      title: str | None = None, width: int = 120,
                      caption: str | None = None) -> Table:
    """Rank, trial, metric (mean ± std over seeds), `vs best` (Welch t-test against the first
    trial, which is the best), swept values by their dotted names, best epoch, gap, seconds;
    at `width` columns the least useful ones are left out first."""
    seeds = any(len(t.values) > 1 for t in trials)
    cols = [Col("rank", [str(i) for i in range(1, len(trials) + 1)]),
            Col("trial", [str(t.number) for t in trials], priority=5),
            Col(f"{metric} ± std" if seeds else metric, [_mean_std(t) for t in trials]),
            Col("vs best", [_vs_best(t, trials[0]) for t in trials], priority=3 if seeds else 5)]
    for i, key in enumerate(swept):
        cells = [_value_cell(t.params[key]) if key in t.params else "·" for t in trials]
        cols.append(Col(key, cells, priority=2 + (i > 3), justify="left"))
    cols += [Col("best epoch", [_epochs_cell(t.best_epochs) for t in trials], priority=4),
             Col("gap", ["—" if t.gap is None else f"{t.gap:+.4f}" for t in trials],
                 priority=4),
             Col("seconds", [f"{t.seconds:.1f}" for t in trials], priority=6)]
    return fit_table(cols, width, title=title, caption=caption)


def render_leaderboard(console: Console, result: SweepResult, top: int = 10) -> None:
    """The final leaderboard: counts, the top `top` completed trials, failures, best path."""
    done = [t for t in result.trials if t.state == "complete" and t.value is not None]
    console.print(Text(f"sweep {result.name}: " + _counts_line(result.counts, result.total)))
    if done:
        shown = done[:top] if top > 0 else done
        caption = f"{len(done) - len(shown)} more in leaderboard.csv" if len(done) > len(
            shown) else None
        console.print(leaderboard_table(
            shown, result.metric, result.swept, width=console.width, caption=caption,
            title=f"leaderboard ({result.direction} {result.metric})"))
    failed = [t for t in result.trials if t.state == "fail" and t.status in FINAL_FAILS]
    for t in failed[:5]:
        console.print(Text(f"trial {t.number} {t.status}: {t.reason or ''}"), soft_wrap=True)
    if len(failed) > 5:
        console.print(Text(f"... and {len(failed) - 5} more failed trials (leaderboard.csv)"))
    best = result.best
    pairs = [("sweep directory", result.sweep_dir)]
    if best is not None and best.checkpoint:
        pairs.insert(0, (f"best trial {best.number}", best.checkpoint))
    console.print(_kv_grid(pairs))


class SweepDisplay(Callback):
    """Live sweep status: trial counts, the current population's epoch progress and the top
    of the leaderboard. On a pipe it prints one line per population and per update instead."""

    def __init__(self, console: Console, top: int = 5, refresh_per_second: float = 4) -> None:
        self.console, self.top = console, top
        self.live_mode = is_terminal(console)
        self._update: SweepUpdate | None = None
        self._epochs, self._epoch, self._members = 0, 0, 0
        self._last = 0.0
        self._batches = 0
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps"), TimeElapsedColumn(), console=console)
        self._task = self._progress.add_task("waiting for trials", total=None)
        self._live: Live | None = None
        if self.live_mode:
            self._live = Live(console=console, get_renderable=self._renderable,
                              refresh_per_second=refresh_per_second)
            self._live.start()

    def __enter__(self) -> SweepDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)
        if not self.live_mode:
            self.console.file.flush()

    def on_run_start(self, start: RunStart) -> None:
        self._epochs, self._epoch, self._members = start.epochs, start.start_epoch, len(
            start.names)
        self._batches = start.batches_per_epoch
        # one bar for the population's whole run: epochs × batches, elapsed time kept
        self._progress.reset(self._task, total=start.epochs * self._batches,
                             completed=start.start_epoch * self._batches,
                             description=self._describe())

    def _describe(self) -> str:
        return f"population of {self._members}: epoch {min(self._epoch + 1, self._epochs)}" \
               f"/{self._epochs}"

    def on_batch_end(self, progress: BatchProgress) -> None:
        now = time.monotonic()
        if progress.batch < progress.batches and now - self._last < 0.1:
            return
        self._last = now
        self._progress.update(self._task, completed=(progress.epoch - 1) * progress.batches
                              + progress.batch)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if not metrics:
            return
        self._epoch = metrics[0].epoch
        self._members = len(metrics)
        self._progress.update(self._task, description=self._describe())
        if not self.live_mode:
            self._line(f"  epoch {self._epoch}/{self._epochs}: {len(metrics)} members training, "
                       f"{metrics[0].seconds:.1f}s")

    def on_sweep_update(self, update: SweepUpdate) -> None:
        self._update = update
        if not self.live_mode:
            if update.message:
                self._line(update.message)
            line = _counts_line(update.counts, update.total)
            if update.top:
                best = update.top[0]
                line += f"; best so far: trial {best.number} {update.metric} {_mean_std(best)}"
            self._line(line)
        elif update.message:
            self._line(update.message)

    def log(self, message: str) -> None:
        self._line(message)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _renderable(self) -> RenderableType:
        parts: list[RenderableType] = []
        u = self._update
        if u is not None:
            parts.append(Text(_counts_line(u.counts, u.total)))
        parts.append(self._progress)
        if u is not None and u.top:
            parts.append(leaderboard_table(u.top[:self.top], u.metric, u.swept,
                                           title=f"top {min(self.top, len(u.top))}",
                                           width=self.console.width))
        return Group(*parts)

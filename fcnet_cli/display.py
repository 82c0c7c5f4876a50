"""Terminal rendering: the only module that imports rich (DESIGN.md). No torch here.

Every function takes a `Console`, so tests render to `Console(file=StringIO(), width=100)`.
User-provided text (messages, class names, paths) is wrapped in `Text`, never parsed as markup.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from fcnet_cli.results import (
    BatchProgress,
    Callback,
    EpochMetrics,
    EvalResult,
    RunResult,
    RunStart,
    SweepResult,
    SweepUpdate,
    TrialResult,
)

__all__ = [
    "LiveTrainDisplay",
    "PlainTrainDisplay",
    "SweepDisplay",
    "is_terminal",
    "make_console",
    "render_comparison",
    "render_config",
    "render_errors",
    "render_importances",
    "render_leaderboard",
    "leaderboard_table",
    "render_eval",
    "render_run_summary",
    "render_schema",
]

_PIPE_WIDTH = 120  # columns used for wide tables when output is not a terminal
_FINAL_ROWS = 200  # most epoch rows left on screen when a live run ends (metrics.csv has all)


def make_console(stderr: bool = False) -> Console:
    """A console on the current sys.stdout/sys.stderr (created late, so CliRunner sees it)."""
    console = Console(stderr=stderr, highlight=False)
    if not is_terminal(console) and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH  # a pipe or file has no width to respect: room for tables
    return console


def is_terminal(console: Console) -> bool:
    return console.is_terminal and not console.is_dumb_terminal


def _num(x: float, spec: str = ".4f") -> str:
    return format(x, spec)


def _epoch_cells(m: EpochMetrics, epochs: int) -> list[str]:
    return [f"{m.epoch}/{epochs}", _num(m.train_loss), _num(m.train_accuracy),
            _num(m.val_loss), _num(m.val_accuracy), _num(m.gap_accuracy, "+.4f"),
            _num(m.lr, ".4g"), f"{m.seconds:.2f}s"]


def _start_line(start: RunStart) -> Text:
    who = start.names[0] if len(start.names) == 1 else f"{len(start.names)} members"
    where = start.run_dirs[0] if len(start.run_dirs) == 1 and start.run_dirs[0] else None
    resumed = f", resuming after epoch {start.start_epoch}" if start.start_epoch else ""
    line = (f"training {who} on {start.device}: {start.n_train} train / {start.n_val} val / "
            f"{start.n_test} test, {start.n_features} features, {start.n_classes} classes, "
            f"{start.epochs} epochs{resumed}")
    return Text(line + (f"\nrun directory: {where}" if where else ""))


class LiveTrainDisplay(Callback):
    """A live epoch table (one row per epoch, or per epoch and member) and a batch progress bar.

    Log messages print above the live area. Call `close()` (or use `with`) when training ends,
    even by an exception; it leaves the table (up to the last 200 rows) on screen.
    """

    def __init__(self, console: Console, refresh_per_second: float = 8) -> None:
        self.console = console
        self.refresh_per_second = refresh_per_second
        self._rows: list[tuple[str, list[str], bool]] = []  # (member name, cells, last member)
        self._names: list[str] = []
        self._epochs = 0
        self._ended: set[int] = set()
        self._final = False
        self._live: Live | None = None
        self._last_update = 0.0
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("batches"), TimeElapsedColumn(), console=console)
        self._task = self._progress.add_task("", total=None, visible=False)

    def __enter__(self) -> LiveTrainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_run_start(self, start: RunStart) -> None:
        self.close()
        self._rows, self._ended, self._final = [], set(), False
        self._names, self._epochs = list(start.names), start.epochs
        self.console.print(_start_line(start))
        self._progress.reset(self._task, total=start.batches_per_epoch, completed=0,
                             description=f"epoch {start.start_epoch + 1}/{start.epochs}",
                             visible=True)
        self._live = Live(console=self.console, get_renderable=self._renderable,
                          refresh_per_second=self.refresh_per_second)
        self._live.start()

    def on_batch_end(self, progress: BatchProgress) -> None:
        now = time.monotonic()
        if progress.batch < progress.batches and now - self._last_update < 0.05:
            return  # the bar refreshes a few times a second; skip the bookkeeping
        self._last_update = now
        self._progress.update(self._task, total=progress.batches, completed=progress.batch,
                              description=f"epoch {progress.epoch}/{self._epochs}")

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        for i, m in enumerate(metrics):
            name = self._names[m.member] if m.member < len(self._names) else str(m.member)
            self._rows.append((name, _epoch_cells(m, self._epochs), i == len(metrics) - 1))
        if metrics:
            nxt = metrics[0].epoch + 1
            if nxt <= self._epochs:
                self._progress.reset(self._task, completed=0,
                                     description=f"epoch {nxt}/{self._epochs}")

    def on_member_end(self, member: int, result: RunResult) -> None:
        self._ended.add(member)
        if len(self._names) > 1 and result.status != "completed":
            why = f": {result.reason}" if result.reason else ""
            self.on_log(f"{result.name}: {result.status}{why}")
        if self._names and len(self._ended) >= len(self._names):
            self.close()

    def on_log(self, message: str) -> None:
        self.console.print(Text(message))

    def close(self) -> None:
        """Stop the live area, leaving the final table (without the progress bar)."""
        if self._live is not None:
            self._final = True
            self._live.stop()
            self._live = None

    def _renderable(self) -> RenderableType:
        if self._final:
            return self._table(_FINAL_ROWS)
        room = max(3, self.console.height - 8)
        return Group(self._table(room), self._progress)

    def _table(self, max_rows: int) -> Table:
        rows = self._rows[-max_rows:] if max_rows else []
        hidden = len(self._rows) - len(rows)
        caption = f"{hidden} earlier rows not shown (all are in metrics.csv)" if hidden else None
        many = len(self._names) > 1
        table = Table(caption=caption, header_style="bold")
        table.add_column("epoch", justify="right", no_wrap=True)
        if many:
            table.add_column("member", max_width=24, no_wrap=True, overflow="ellipsis")
        for head in ("train loss", "train acc", "val loss", "val acc", "gap", "lr", "time"):
            table.add_column(head, justify="right", no_wrap=True)
        first = True
        for name, cells, last in rows:
            # Populations: the epoch number on the first member's row only, a rule after the last.
            shown = [cells[0] if first else "", Text(name), *cells[1:]] if many else cells
            table.add_row(*shown, end_section=many and last)
            first = last
        return table


class PlainTrainDisplay(Callback):
    """One plain line per epoch (and member), for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._names: list[str] = []
        self._epochs = 0

    def _line(self, text: str | Text) -> None:
        self.console.print(text if isinstance(text, Text) else Text(text), soft_wrap=True)
        self.console.file.flush()  # a log file or pipe should see each epoch as it ends

    def on_run_start(self, start: RunStart) -> None:
        self._names, self._epochs = list(start.names), start.epochs
        self._line(_start_line(start))

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        for m in metrics:
            c = _epoch_cells(m, self._epochs)
            who = f"{self._names[m.member]}  " if len(self._names) > 1 else ""
            self._line(f"{who}epoch {c[0]}  train_loss {c[1]}  train_acc {c[2]}  "
                       f"val_loss {c[3]}  val_acc {c[4]}  gap {c[5]}  lr {c[6]}  {c[7]}")

    def on_member_end(self, member: int, result: RunResult) -> None:
        if len(self._names) > 1 and result.status != "completed":
            why = f" ({result.reason})" if result.reason else ""
            self._line(f"{result.name}: {result.status}{why}")

    def on_log(self, message: str) -> None:
        self._line(message)


def _kv_grid(pairs: Iterable[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, Text(value))
    return grid


def render_run_summary(console: Console, result: RunResult) -> None:
    """Status, best epoch with its validation metrics, test metrics, run directory."""
    status = result.status + (f" ({result.reason})" if result.reason else "")
    pairs = [("run", result.name), ("status", status)]
    best = result.best
    if best is not None:
        pairs += [("best epoch", f"{best.epoch} (by {result.monitor})"),
                  ("val", f"loss {best.val_loss:.4f}  accuracy {best.val_accuracy:.4f}"),
                  ("train", f"loss {best.train_loss:.4f}  accuracy {best.train_accuracy:.4f}"
                            f"  gap {best.gap_accuracy:+.4f}")]
    else:
        pairs.append(("best epoch", "none (no epoch completed)"))
    if result.test is not None:
        t = result.test
        pairs.append(("test", f"loss {t.loss:.4f}  accuracy {t.accuracy:.4f}  (n = {t.n})"))
    pairs.append(("time", f"{result.seconds:.1f}s"))
    if result.run_dir:
        pairs.append(("run directory", result.run_dir))
    console.print(_kv_grid(pairs))


def _class_label(i: int, name: str) -> str:
    return name if name == str(i) else f"{i} {name}"


def render_eval(console: Console, result: EvalResult) -> None:
    """Loss and accuracy, a per-class precision/recall/F1/support table, the confusion matrix."""
    console.print(Text(f"split {result.split}: {result.n} examples  loss {result.loss:.4f}  "
                       f"accuracy {result.accuracy:.4f}"))
    per_class = Table(title="per class", header_style="bold")
    per_class.add_column("class", overflow="fold")
    for head in ("precision", "recall", "f1", "support"):
        per_class.add_column(head, justify="right", no_wrap=True)
    rows = zip(result.classes, result.precision, result.recall, result.f1, result.support,
               strict=False)
    for i, (name, p, r, f, s) in enumerate(rows):
        per_class.add_row(Text(_class_label(i, name)), f"{p:.4f}", f"{r:.4f}", f"{f:.4f}", str(s))
    k = len(result.classes)
    if k:
        per_class.add_section()
        per_class.add_row("macro avg", f"{sum(result.precision) / k:.4f}",
                          f"{sum(result.recall) / k:.4f}", f"{sum(result.f1) / k:.4f}",
                          str(sum(result.support)))
    console.print(per_class)
    console.print(_confusion_table(result))


def _confusion_table(result: EvalResult) -> Table:
    short = all(len(c) <= 6 for c in result.classes)
    table = Table(title="confusion matrix",
                  header_style="bold")
    table.add_column("true \\ pred", overflow="fold")
    for i, name in enumerate(result.classes):
        table.add_column(Text(name if short else str(i)), justify="right", no_wrap=True)
    for i, (name, row) in enumerate(zip(result.classes, result.confusion, strict=False)):
        cells = [Text(str(v), style="bold" if j == i else "") for j, v in enumerate(row)]
        table.add_row(Text(_class_label(i, name)), *cells)
    return table


def _schema_type(type_: str, description: str) -> tuple[str, str]:
    """Literal['a', 'b'] -> ("choice", "...; one of: a, b"): keeps the type column narrow."""
    if not type_.startswith("Literal["):
        return type_, description
    choices = ", ".join(c.strip().strip("'\"") for c in type_[8:-1].split(","))
    return "choice", f"{description}; one of: {choices}" if description else f"one of: {choices}"


def render_schema(console: Console, rows: Sequence[tuple[str, str, str, str]],
                  values: dict[str, str] | None = None) -> None:
    """The config schema: one row per field. `values` adds a column with a config's values."""
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("field", no_wrap=True)
    table.add_column("type", overflow="fold", max_width=12)
    if values is not None:
        table.add_column("value", overflow="fold", max_width=24)
    table.add_column("default", overflow="fold", max_width=14)
    table.add_column("description", overflow="fold", min_width=20)
    for path, type_, default, description in rows:
        shown_type, description = _schema_type(type_, description)
        cells = [Text(path), Text(shown_type)]
        if values is not None:
            value = values.get(path, "")
            cells.append(Text(value, style="bold" if value != default else ""))
        table.add_row(*cells, Text(default), Text(description))
    console.print(table)


def render_config(console: Console, yaml_text: str) -> None:
    """A resolved config: highlighted on a terminal, verbatim (valid YAML) otherwise."""
    if is_terminal(console):
        console.print(Syntax(yaml_text.rstrip("\n"), "yaml", background_color="default"))
    else:
        console.print(Text(yaml_text.rstrip("\n")), soft_wrap=True)


def render_errors(console: Console, problems: Sequence[str]) -> None:
    """One line per problem, prefixed `error:`; the text itself is never parsed as markup."""
    for problem in problems:
        line = Text("error: ", style="bold red")
        line.append(str(problem).replace("\n", " "))
        console.print(line, soft_wrap=True)


def render_comparison(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]],
                      title: str | None = None, caption: str | None = None) -> None:
    """A comparison of runs (`report.Comparison.cells()`): one row per run, already sorted."""
    table = Table(title=title, caption=caption, header_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    longest = max((len(r[0]) for r in rows if r), default=8)
    for i, head in enumerate(headers):
        if i == 0:  # the run name folds; the numbers never do
            table.add_column(Text(head), overflow="fold", min_width=min(longest, 14))
        else:
            table.add_column(Text(head), justify="right", overflow="fold",
                             min_width=min(len(head), 8))
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    console.print(table)


def render_importances(console: Console, rows: Sequence[tuple[str, float]], source: str) -> None:
    """Optuna parameter importances (fractions summing to 1), largest first."""
    table = Table(title="parameter importances (fANOVA)", caption=Text(f"from {source}"),
                  header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("parameter", no_wrap=True)
    table.add_column("importance", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for name, value in rows:
        table.add_row(Text(name), f"{value:.3f}", "█" * max(0, round(value * 30)))
    console.print(table)


# ---------------------------------------------------------------- sweeps


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
    if t.value is None:
        return "—"
    return f"{t.value:.4f} ± {t.std or 0.0:.4f}"


def _epochs_cell(epochs: Sequence[int]) -> str:
    if not epochs:
        return "—"
    lo, hi = min(epochs), max(epochs)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def leaderboard_table(trials: Sequence[TrialResult], metric: str, swept: Sequence[str],
                      title: str | None = None) -> Table:
    """Rank, trial, metric mean ± std over seeds, swept values, best epoch, gap, seconds."""
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False)
    table.add_column("rank", justify="right", no_wrap=True, min_width=4)
    table.add_column("trial", justify="right", no_wrap=True, min_width=5)
    table.add_column(f"{metric} ± std", justify="right", no_wrap=True, min_width=15)
    short = [k.rsplit(".", 1)[-1] for k in swept]
    cells = [[_value_cell(t.params[k]) if k in t.params else "·" for k in swept] for t in trials]
    for i, (key, head) in enumerate(zip(swept, short, strict=True)):
        head = head if short.count(head) == 1 else key  # "momentum", unless two keys end so
        widest = max([len(head), *(len(row[i]) for row in cells)])
        table.add_column(Text(head), no_wrap=True, overflow="ellipsis", min_width=min(widest, 10),
                         max_width=24)
    for head in ("best epoch", "gap", "seconds"):
        table.add_column(head, justify="right", no_wrap=True, min_width=len(head))
    for rank, (t, row) in enumerate(zip(trials, cells, strict=True), 1):
        gap = "—" if t.gap is None else f"{t.gap:+.4f}"
        table.add_row(str(rank), str(t.number), _mean_std(t), *(Text(c) for c in row),
                      _epochs_cell(t.best_epochs), gap, f"{t.seconds:.1f}")
    return table


def render_leaderboard(console: Console, result: SweepResult, top: int = 10) -> None:
    """The final leaderboard: counts, the top `top` completed trials, failures, best path."""
    done = [t for t in result.trials if t.state == "complete" and t.value is not None]
    console.print(Text(f"sweep {result.name}: " + _counts_line(result.counts, result.total)))
    if done:
        shown = done[:top] if top > 0 else done
        caption = f"{len(done) - len(shown)} more in leaderboard.csv" if len(done) > len(
            shown) else None
        table = leaderboard_table(shown, result.metric, result.swept,
                                  title=f"leaderboard ({result.direction} {result.metric})")
        table.caption = caption
        console.print(table)
    failed = [t for t in result.trials if t.state == "fail" and t.status in
              ("diverged", "error", "invalid")]
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

    def on_log(self, message: str) -> None:
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
                                           title=f"top {min(self.top, len(u.top))}"))
        return Group(*parts)

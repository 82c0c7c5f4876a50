"""The live epoch table, plain epoch lines, the run summary and evaluation tables."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fcnet_cli.analysis.diagnose import diagnose_history, diagnose_members
from fcnet_cli.display.base import (
    _FINAL_ROWS,
    _kv_grid,
    _num,
)
from fcnet_cli.display.fit import Col, fit_table
from fcnet_cli.display.wrap import print_wrapped, wrap_parts
from fcnet_cli.events import (
    BatchProgress,
    Callback,
    EpochMetrics,
    EvalResult,
    RunResult,
    RunStart,
)
from fcnet_cli.metrics import label


def _epoch_cells(m: EpochMetrics, epochs: int, extra: str | None = None) -> list[str]:
    """The cells of one epoch row; `extra` (the monitored metric when the table has no column
    of its own for it) comes last."""
    if "val_rmse" in m.metrics:
        cells = [f"{m.epoch}/{epochs}", _num(m.train_loss), _num(m.metrics["val_r2"]),
                 _num(m.val_loss), _num(m.metrics["val_rmse"], ".4g"),
                 _num(m.gap_loss, "+.4f"), _num(m.lr, ".4g"), f"{m.seconds:.2f}s"]
    else:
        cells = [f"{m.epoch}/{epochs}", _num(m.train_loss), _num(m.train_accuracy),
                 _num(m.val_loss), _num(m.val_accuracy), _num(m.gap_accuracy, "+.4f"),
                 _num(m.lr, ".4g"), f"{m.seconds:.2f}s"]
    return cells + ([_num(m.value(extra))] if extra else [])


def monitored_column(monitor: str, task: str) -> str | None:
    """The monitored metric when the epoch table has no column for it (balanced accuracy,
    macro F1, MAE), else None: the table always shows what picks the best epoch."""
    shown = ("val_loss", "val_r2", "val_rmse") if task == "regression" else (
        "val_loss", "val_accuracy")
    return None if monitor in shown else monitor


def _start_line(start: RunStart) -> Text:
    who = start.names[0] if len(start.names) == 1 else f"{len(start.names)} members"
    where = start.run_dirs[0] if len(start.run_dirs) == 1 and start.run_dirs[0] else None
    resumed = f", resuming after epoch {start.start_epoch}" if start.start_epoch else ""
    line = (f"training {who} on {start.device}: {start.n_train} train / {start.n_val} val / "
            f"{start.n_test} test, {start.n_features} features, {_outputs(start)}, "
            f"{start.epochs} epochs{resumed}")
    return Text(line + (f"\nrun directory: {where}" if where else ""))


def _outputs(start: RunStart) -> str:
    if start.task == "regression":
        return f"{start.n_classes} target{'s' if start.n_classes > 1 else ''} (regression)"
    return f"{start.n_classes} classes"


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
        self._regression = False
        self._extra: str | None = None  # the monitored metric's own column
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
        self._regression = start.task == "regression"
        self._extra = monitored_column(start.monitor, start.task)
        self.console.print(_start_line(start))
        for note in start.notices:
            print_wrapped(self.console, note)
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
            self._rows.append((name, _epoch_cells(m, self._epochs, self._extra),
                               i == len(metrics) - 1))
        if metrics:
            nxt = metrics[0].epoch + 1
            if nxt <= self._epochs:
                self._progress.reset(self._task, completed=0,
                                     description=f"epoch {nxt}/{self._epochs}")

    def on_member_end(self, member: int, result: RunResult) -> None:
        self._ended.add(member)
        if len(self._names) > 1 and result.status != "completed":
            why = f": {result.reason}" if result.reason else ""
            self.log(f"{self._names[member]}: {result.status}{why}")  # "seed 3", a trial
        if self._names and len(self._ended) >= len(self._names):
            self.close()

    def log(self, message: str) -> None:
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
        notes = ["gap = val loss − train loss" if self._regression else "gap = train acc − val acc"]
        if hidden:
            notes.append(f"{hidden} earlier rows not shown (all are in metrics.csv)")
        many = len(self._names) > 1
        cols = epoch_columns([cells for _, cells, _ in rows], regression=self._regression,
                             extra=self._extra)
        if many:
            # Populations: the epoch number on the first member's row only.
            firsts = [i == 0 or rows[i - 1][2] for i in range(len(rows))]
            cols[0].cells = [c if first else "" for c, first in zip(cols[0].cells, firsts,
                                                                   strict=True)]
            cols.insert(1, Col("member", [Text(name) for name, _, _ in rows], priority=2,
                               justify="left", fold=True))
        return fit_table(cols, self.console.width, caption="; ".join(notes),
                         end_section=[many and last for _, _, last in rows])


# Short headers for 80 columns, and which to leave out first when even those do not fit.
_EPOCH_HEADERS = (("ep", 0), ("loss", 1), ("acc", 3), ("val loss", 0), ("val acc", 0),
                  ("gap", 2), ("lr", 4), ("time", 5))
# regression: R² and RMSE (target units) take the accuracy columns, the loss gap the gap's
_REGRESSION_HEADERS = (("ep", 0), ("loss", 1), ("val r2", 3), ("val loss", 0), ("val rmse", 0),
                       ("gap", 2), ("lr", 4), ("time", 5))


def epoch_columns(rows: list[list[str]], *, regression: bool = False,
                  extra: str | None = None) -> list[Col]:
    """The epoch table's columns from `_epoch_cells` rows; the monitored metric's column
    (`extra`), when there is one, after the validation columns and never left out."""
    heads = _REGRESSION_HEADERS if regression else _EPOCH_HEADERS
    cols = [Col(head, [r[i] for r in rows], priority=p) for i, (head, p) in enumerate(heads)]
    if extra is not None:
        cols.insert(5, Col(label(extra), [r[len(heads)] for r in rows], priority=0))
    return cols


class PlainTrainDisplay(Callback):
    """One plain line per epoch (and member), for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._names: list[str] = []
        self._epochs = 0
        self._extra: str | None = None

    def _line(self, text: str | Text) -> None:
        self.console.print(text if isinstance(text, Text) else Text(text), soft_wrap=True)
        self.console.file.flush()  # a log file or pipe should see each epoch as it ends

    def on_run_start(self, start: RunStart) -> None:
        self._names, self._epochs = list(start.names), start.epochs
        self._extra = monitored_column(start.monitor, start.task)
        self._line(_start_line(start))
        for note in start.notices:
            print_wrapped(self.console, note)

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        for m in metrics:
            c = _epoch_cells(m, self._epochs, self._extra)
            who = f"{self._names[m.member]}  " if len(self._names) > 1 else ""
            more = f"  {self._extra} {c[8]}" if self._extra else ""
            if "val_rmse" in m.metrics:
                self._line(f"{who}epoch {c[0]}  train_loss {c[1]}  val_loss {c[3]}  "
                           f"val_rmse {c[4]}  val_r2 {c[2]}{more}  gap {c[5]}  lr {c[6]}  "
                           f"{c[7]}")
                continue
            self._line(f"{who}epoch {c[0]}  train_loss {c[1]}  train_acc {c[2]}  "
                       f"val_loss {c[3]}  val_acc {c[4]}{more}  gap {c[5]}  lr {c[6]}  {c[7]}")

    def on_member_end(self, member: int, result: RunResult) -> None:
        if len(self._names) > 1 and result.status != "completed":
            why = f" ({result.reason})" if result.reason else ""
            self._line(f"{self._names[member]}: {result.status}{why}")

    def log(self, message: str) -> None:
        self._line(message)


def render_run_summary(console: Console, result: RunResult) -> None:
    """Status, best epoch with its validation metrics, test metrics, run directory."""
    status = result.status + (f" ({result.reason})" if result.reason else "")
    pairs: list[tuple[str, str | list[str]]] = [("run", result.name), ("status", status)]
    best = result.best
    if best is not None and "val_rmse" in best.metrics:
        b = best.metrics
        pairs += [("best epoch", f"{best.epoch} (by {result.monitor})"),
                  ("val", [f"loss {best.val_loss:.4f}", f"rmse {b['val_rmse']:.4g}",
                           f"mae {b['val_mae']:.4g}", f"r2 {b['val_r2']:.4f}"]),
                  ("train", [f"loss {best.train_loss:.4f}", f"gap {best.gap_loss:+.4f}"])]
    elif best is not None:
        pairs += [("best epoch", f"{best.epoch} (by {result.monitor})"),
                  ("val", [f"loss {best.val_loss:.4f}", f"accuracy {best.val_accuracy:.4f}",
                           *_val_parts(best.metrics)]),
                  ("train", [f"loss {best.train_loss:.4f}",
                             f"accuracy {best.train_accuracy:.4f}",
                             f"gap {best.gap_accuracy:+.4f}"])]
    elif result.members:  # an ensemble: each member has its own best epoch
        epochs = ", ".join("-" if e is None else str(e) for e in result.member_epochs)
        pairs.append(("members", f"{len(result.members)} (best epochs {epochs}, "
                                 f"by {result.monitor})"))
    else:
        pairs.append(("best epoch", "none (no epoch completed)"))
    if result.test is not None:
        pairs.append(("test", _eval_parts(result.test)))
        if result.test.members:
            pairs.append(("members' test", member_parts(result.test.members)))
    pairs.append(("time", f"{result.seconds:.1f}s"))
    if result.run_dir:
        pairs.append(("run directory", result.run_dir))
    # whole parts per line: "(n = 86)" never breaks across lines
    room = console.width - len("run directory") - 2
    console.print(_kv_grid([(k, v if isinstance(v, str) else "\n".join(
        wrap_parts(v, room, indent=""))) for k, v in pairs]))
    for note in result.notices:
        print_wrapped(console, note, style="yellow")
    said = diagnose_members(result.member_histories) if result.members else \
        diagnose_history(result.history)
    for line in said:
        print_wrapped(console, line, style="yellow")


def member_parts(members: dict[str, dict[str, Any]]) -> list[str]:
    """An ensemble's members on one split: "accuracy 0.9481 ± 0.0123" per main metric."""
    names = {"balanced_accuracy": "balanced acc", "macro_f1": "macro F1", "roc_auc": "ROC-AUC",
             "r2": "r2"}
    return [f"{names.get(k, k)} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in members.items()]


def _val_parts(metrics: dict[str, float]) -> list[str]:
    """An epoch's further classification metrics (`EpochMetrics.metrics`), one part each."""
    names = (("val_balanced_accuracy", "balanced acc"), ("val_macro_f1", "macro F1"),
             ("val_roc_auc", "ROC-AUC"), ("val_pr_auc", "PR-AUC"))
    return [f"{label} {metrics[k]:.4f}" for k, label in names if k in metrics]


def _eval_parts(t: EvalResult) -> list[str]:
    """Loss and the headline metrics of one split, one unbreakable part each."""
    m, nan = t.metrics, float("nan")
    if t.task == "regression":
        return [f"loss {t.loss:.4f}", f"rmse {m.get('rmse', nan):.4g}",
                f"mae {m.get('mae', nan):.4g}", f"r2 {m.get('r2', nan):.4f}", f"(n = {t.n})"]
    parts = [f"loss {t.loss:.4f}", f"accuracy {t.accuracy:.4f}"]
    if "balanced_accuracy" in m:
        parts += [f"balanced acc {m['balanced_accuracy']:.4f}", f"macro F1 {m['macro_f1']:.4f}"]
    if "roc_auc" in m:
        parts += [f"ROC-AUC {m['roc_auc']:.4f}", f"PR-AUC {m['pr_auc']:.4f}"]
    return parts + [f"(n = {t.n})"]


def _threshold_parts(t: EvalResult) -> list[str]:
    """Binary: the threshold used, and the one that maximizes validation balanced accuracy."""
    m, lines = t.metrics, []
    positive = t.classes[1] if len(t.classes) == 2 else "1"
    if "threshold" in m:
        lines.append(f"predicted '{positive}' when its probability is at least "
                     f"{m['threshold']:g} (--threshold)")
    best = m.get("best_threshold", math.nan)
    if not math.isnan(best):
        lines.append(f"validation split: balanced accuracy is highest, "
                     f"{m['best_threshold_balanced_accuracy']:.4f}, at --threshold "
                     f"{best:.4g} (probability of '{positive}')")
    return lines


def _class_label(i: int, name: str) -> str:
    return name if name == str(i) else f"{i} {name}"


def render_eval(console: Console, result: EvalResult) -> None:
    """Loss and accuracy, a per-class precision/recall/F1/support table, the confusion matrix;
    for regression the metrics per target and a residual summary."""
    for note in result.notices:
        print_wrapped(console, note, style="yellow")
    print_wrapped(console, [f"split {result.split}: {result.n} examples", *_eval_parts(result)])
    if result.members:  # an ensemble: the line above is the ensemble's
        n = len(next(iter(result.members.values()))["values"])
        print_wrapped(console, [f"members ({n}, mean ± std):", *member_parts(result.members)])
    for line in _threshold_parts(result):
        print_wrapped(console, line)
    if result.task == "regression":
        _render_regression(console, result)
        return
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


def _render_regression(console: Console, result: EvalResult) -> None:
    m = result.metrics
    per_target = Table(title="per target (target units)", header_style="bold")
    per_target.add_column("target", overflow="fold")
    for head in ("rmse", "mae", "r2"):
        per_target.add_column(head, justify="right", no_wrap=True)
    many = len(result.targets) > 1
    for name in result.targets:
        keys = [f"{k}_{name}" if many else k for k in ("rmse", "mae", "r2")]
        per_target.add_row(Text(name), *(f"{m.get(k, float('nan')):.4g}" for k in keys))
    console.print(per_target)
    qs = [k for k in sorted(m) if k.startswith("residual_q")]
    if qs:
        cells = "  ".join(f"{k.removeprefix('residual_')} {m[k]:+.4g}" for k in qs)
        console.print(Text(f"residuals (truth − prediction): mean {m['residual_mean']:+.4g}  "
                           f"{cells}"))

"""display.py renders engine dataclasses: render to a StringIO console and look for the numbers."""

from io import StringIO

import pytest
from rich.console import Console

from fcnet_cli.config import describe_schema
from fcnet_cli.display import (
    LiveTrainDisplay,
    PlainTrainDisplay,
    render_config,
    render_errors,
    render_eval,
    render_run_summary,
    render_schema,
)
from fcnet_cli.events import BatchProgress, EpochMetrics, EvalResult, RunResult, RunStart


def _console() -> Console:
    return Console(file=StringIO(), width=100)


def _text(console: Console) -> str:
    out = console.file
    assert isinstance(out, StringIO)
    return out.getvalue()


def _start(names: list[str], epochs: int = 2) -> RunStart:
    return RunStart(names=names, run_dirs=["runs/iris/r1"] if len(names) == 1 else [None] * 2,
                    epochs=epochs, batches_per_epoch=3, start_epoch=0, device="cpu",
                    n_train=90, n_val=30, n_test=30, n_features=4, n_classes=3)


def _metrics(member: int, epoch: int) -> EpochMetrics:
    return EpochMetrics(member=member, epoch=epoch, train_loss=0.4123 + member,
                        train_accuracy=0.8812, val_loss=0.4511, val_accuracy=0.8650,
                        lr=0.1, seconds=1.234)


def _result(status: str = "completed", reason: str | None = None) -> RunResult:
    history = [_metrics(0, 1), EpochMetrics(0, 2, 0.2, 0.95, 0.31, 0.9333, 0.05, 0.5)]
    test = EvalResult("test", 0.2874, 0.9111, 45, ["a", "b"], [1.0, 0.5], [0.5, 1.0],
                      [0.6667, 0.6667], [2, 1], [[1, 1], [0, 1]])
    return RunResult(name="iris", run_dir="runs/iris/r1", status=status, history=history,
                     best_epoch=2, monitor="val_loss", test=test, reason=reason, seconds=3.5)


def _drive(display: LiveTrainDisplay | PlainTrainDisplay, names: list[str]) -> None:
    display.on_run_start(_start(names))
    for epoch in (1, 2):
        for batch in (1, 2, 3):
            display.on_batch_end(BatchProgress(epoch, batch, 3))
        display.on_epoch_end([_metrics(k, epoch) for k in range(len(names))])
    display.log("a [bold]log[/bold] line")
    for k, name in enumerate(names):
        display.on_member_end(k, RunResult(name, None, "completed", [], 2, "val_loss"))


def test_plain_display_prints_one_line_per_epoch() -> None:
    console = _console()
    _drive(PlainTrainDisplay(console), ["iris"])
    lines = [ln for ln in _text(console).splitlines() if ln.startswith("epoch ")]
    assert lines == [
        f"epoch {e}/2  train_loss 0.4123  train_acc 0.8812  val_loss 0.4511  val_acc 0.8650  "
        "gap +0.0162  lr 0.1  1.23s" for e in (1, 2)
    ]
    text = _text(console)
    assert "90 train / 30 val / 30 test" in text
    assert "a [bold]log[/bold] line" in text  # log text is not parsed as markup


def test_plain_display_names_members_of_a_population() -> None:
    console = _console()
    _drive(PlainTrainDisplay(console), ["lr=0.1", "lr=0.01"])
    text = _text(console)
    assert "lr=0.1  epoch 2/2  train_loss 0.4123" in text
    assert "lr=0.01  epoch 2/2  train_loss 1.4123" in text


def test_live_display_leaves_the_epoch_table() -> None:
    console = _console()
    display = LiveTrainDisplay(console)
    _drive(display, ["iris"])
    display.close()  # idempotent after the last member ended
    text = _text(console)
    header = next(ln for ln in text.splitlines() if "val loss" in ln).split()
    assert header == ["ep", "loss", "acc", "val", "loss", "val", "acc", "gap", "lr", "time"]
    assert "gap = train acc − val acc" in text
    for value in ("1/2", "2/2", "0.4123", "0.8812", "0.4511", "0.8650", "+0.0162", "1.23s"):
        assert value in text
    assert "a [bold]log[/bold] line" in text
    assert "member" not in text


def test_live_display_shows_one_row_per_epoch_and_member() -> None:
    console = _console()
    with LiveTrainDisplay(console) as display:
        _drive(display, ["lr=0.1", "lr=0.01"])
    text = _text(console)
    assert "member" in text
    assert text.count("lr=0.01") == 2  # one row per epoch
    assert "1.4123" in text and "0.4123" in text


def test_live_display_closes_when_training_raises() -> None:
    console = _console()
    display = LiveTrainDisplay(console)
    display.on_run_start(_start(["iris"]))
    display.on_epoch_end([_metrics(0, 1)])
    display.close()
    display.close()
    assert "0.4123" in _text(console)


def test_run_summary_shows_best_epoch_test_metrics_and_run_dir() -> None:
    console = _console()
    render_run_summary(console, _result())
    text = _text(console)
    for value in ("completed", "2 (by val_loss)", "0.3100", "0.9333", "0.2874", "0.9111",
                  "runs/iris/r1"):
        assert value in text


@pytest.mark.parametrize("status", ["diverged", "interrupted"])
def test_run_summary_gives_the_reason(status: str) -> None:
    console = _console()
    render_run_summary(console, _result(status, reason="loss is nan at epoch 3 [batch 2]"))
    assert f"{status} (loss is nan at epoch 3 [batch 2])" in _text(console)


def test_run_summary_without_a_completed_epoch() -> None:
    console = _console()
    result = RunResult("iris", None, "interrupted", [], None, "val_loss")
    render_run_summary(console, result)
    assert "no epoch completed" in _text(console)


def test_eval_tables_show_metrics_and_confusion_matrix() -> None:
    console = _console()
    result = EvalResult(split="val", loss=0.1234, accuracy=0.875, n=8,
                        classes=["cat", "dog"], precision=[0.8, 1.0], recall=[1.0, 0.75],
                        f1=[0.8889, 0.8571], support=[4, 4], confusion=[[4, 0], [1, 3]])
    render_eval(console, result)
    text = _text(console)
    for value in ("val", "0.1234", "0.8750", "0.8000", "0.7500", "0.8889", "0.8571",
                  "cat", "dog", "confusion matrix", "macro avg"):
        assert value in text
    matrix = [ln for ln in text.splitlines() if "cat" in ln or "dog" in ln][-2:]
    assert [[int(t) for t in ln.replace("│", " ").split() if t.isdigit()] for ln in matrix] == [
        [0, 4, 0], [1, 1, 3]]  # class index, then the row of counts


def test_schema_table_lists_fields_with_defaults() -> None:
    console = _console()
    render_schema(console, describe_schema())
    text = _text(console)
    assert "optimizer.momentum" in text
    assert "training.early_stopping.patience" in text
    assert "one of: sgd, adam, adamw, rmsprop" in text  # as a user writes them
    assert "Literal[" not in text and "Optional" not in text


def test_schema_table_with_values() -> None:
    console = _console()
    rows = [("optimizer.lr", "float > 0", "0.01", "learning rate")]
    render_schema(console, rows, {"optimizer.lr": "0.5"}, {"optimizer.lr": "x.yaml:3"})
    text = _text(console)
    assert text.splitlines()[0] == "optimizer.lr = 0.5  from x.yaml:3  (default 0.01)"
    assert "learning rate (float > 0)" in text


def test_config_is_printed_verbatim_off_a_terminal() -> None:
    console = _console()
    yaml_text = "model:\n  hidden:\n  - 8\n  activation: '[relu]'\n"
    render_config(console, yaml_text)
    assert _text(console) == yaml_text


def test_errors_one_line_each_without_markup() -> None:
    console = _console()
    long = "x.yaml:3: model.activation: " + "very long problem text " * 10
    render_errors(console, ["x.yaml:1: [bold]bad[/bold] key", long, "two\nlines"])
    lines = _text(console).splitlines()
    assert lines == ["error: x.yaml:1: [bold]bad[/bold] key", f"error: {long}",
                     "error: two lines"]

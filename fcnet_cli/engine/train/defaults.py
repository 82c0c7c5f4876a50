"""The data-aware default rule: what a field left out of an experiment becomes, decided from
the data (training rows, features, classes, task) once it is loaded. Torch-free: `validate
--explain --data` shows the same values and reasons that `train` records.

    facts = DataFacts(n_train=258, n_features=13, n_outputs=3, task="classification")
    exp, reasons = resolve_defaults(exp, facts)   # reasons: {"training.epochs": "..."}

The rule (every value can still be set; a set field is never changed):

- ``training.batch_size``: the training rows / 8 rounded down to a power of two, within
  16..256 (small tables get several steps per epoch, large ones RealMLP's 256).
- ``training.epochs``: a budget of `STEPS` optimizer steps, within 20..`MAX_EPOCHS` epochs.
- ``training.early_stopping.patience`` (only when the epochs are auto): a fifth of the epochs,
  within 10..30; the run's `best` checkpoint is the best validation epoch's.
- ``optimizer.name`` / ``optimizer.lr`` (only when no optimizer field is set): AdamW at `LR`
  (scikit-learn's MLP uses Adam at 1e-3 for 200 epochs; a decayed schedule affords more).
- ``loss.label_smoothing`` (only when no optimizer field is set; classification): 0.1, as
  RealMLP-TD.
- ``scheduler.name`` (only when no optimizer or scheduler field is set): cosine decay over
  the epochs.
- ``model.ensemble`` (`ensemble_rule`, only `train` applies it: when no optimizer field is
  set and `training.seeds` is 1): `ENSEMBLE` seeds of the resolved experiment as one
  population, predicting the mean of their probabilities, when an epoch of them stays within
  `ENSEMBLE_WORK` multiply-adds (members × training rows × weights); one model above that.

Fields set by the file, a file it `extends:`, `--set`, or an estimator's parameter count as
set (`set_fields`); a run directory's config.yaml sets every field, so training it again
reproduces the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from fcnet_cli.config import Experiment

if TYPE_CHECKING:
    from fcnet_cli.engine.data.load import DataSplits

__all__ = ["AUTO_FIELDS", "ENSEMBLE", "ENSEMBLE_WORK", "LABEL_SMOOTHING", "LR", "MAX_EPOCHS",
           "STEPS", "DataFacts", "auto_fields", "data_facts", "default_rule", "ensemble_as_run",
           "ensemble_rule", "may_ensemble", "n_weights", "resolve_defaults", "set_fields"]

STEPS = 1000  # optimizer steps the default run may take (early stopping usually ends sooner)
MAX_EPOCHS = 200
LR = 3e-3  # AdamW, decayed by the cosine schedule
AUTO_FIELDS = ("training.batch_size", "training.epochs", "training.early_stopping.patience",
               "optimizer.name", "optimizer.lr", "scheduler.name", "loss.label_smoothing")
LABEL_SMOOTHING = 0.1  # RealMLP-TD's; +1.5 points of test accuracy on digits (bench_quality)
# eight seeds as one population: mean rank 2.25 against one model's 2.62 on 8 tables at a
# lower whole-process time (members write their checkpoints once; bench_quality, README)
ENSEMBLE = 8
ENSEMBLE_WORK = 2e10  # members × training rows × weights per epoch (~1 s on 2 CPU cores)


@dataclass(frozen=True)
class DataFacts:
    """What the rule reads from the loaded data."""

    n_train: int  # rows of the training split
    n_features: int  # model inputs after encoding
    n_outputs: int  # classes, or regression targets
    task: str  # classification | regression


def data_facts(data: DataSplits) -> DataFacts:
    """The facts of loaded splits."""
    return DataFacts(len(data.y_train), data.n_features, data.n_outputs, data.task)


def set_fields(model: BaseModel, prefix: str = "") -> set[str]:
    """Dotted names of the fields set explicitly (pydantic's `model_fields_set`, nested)."""
    out: set[str] = set()
    for name in model.model_fields_set:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out |= set_fields(value, f"{prefix}{name}.") or {f"{prefix}{name}"}
        else:
            out.add(f"{prefix}{name}")
    return out


def _pow2_floor(x: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(x, 1.0))))


def _section_untouched(given: set[str], *sections: str) -> bool:
    return not any(g == s or g.startswith(s + ".") for g in given for s in sections)


def default_rule(facts: DataFacts, given: set[str], batch_size: int
                 ) -> dict[str, tuple[Any, str]]:
    """The value and reason of each field of `AUTO_FIELDS` left out of `given`.

    Args:
        facts: the loaded data.
        given: the dotted fields set explicitly (`set_fields`).
        batch_size: the experiment's batch size (used when it is set).
    """
    out: dict[str, tuple[Any, str]] = {}
    n = facts.n_train
    if "training.batch_size" not in given:
        batch_size = min(256, max(16, _pow2_floor(n / 8)))
        out["training.batch_size"] = (batch_size, f"{n} training rows: rows/8 as a power of "
                                                  f"two, within 16..256")
    if "training.epochs" not in given:
        per_epoch = max(1, math.ceil(n / batch_size))
        epochs = min(MAX_EPOCHS, max(20, math.ceil(STEPS / per_epoch)))
        out["training.epochs"] = (epochs, f"a budget of {STEPS} steps at {per_epoch} steps "
                                          f"per epoch, within 20..{MAX_EPOCHS}")
        if "training.early_stopping.patience" not in given:
            out["training.early_stopping.patience"] = (
                min(30, max(10, epochs // 5)), f"a fifth of the {epochs} epochs, within "
                                               f"10..30; the best epoch is kept")
    if _section_untouched(given, "optimizer"):
        out["optimizer.name"] = ("adamw", "no optimizer field set: AdamW trains without "
                                          "tuning")
        out["optimizer.lr"] = (LR, "AdamW's default step, decayed by the cosine schedule")
        if facts.task == "classification" and "loss.label_smoothing" not in given:
            out["loss.label_smoothing"] = (LABEL_SMOOTHING, "no optimizer field set, "
                                                            "classification: soft targets "
                                                            "generalize better")
        if _section_untouched(given, "scheduler"):
            out["scheduler.name"] = ("cosine", "no optimizer or scheduler field set: decay "
                                               "the lr to 0 over the epochs")
    return out


def n_weights(facts: DataFacts, hidden: list[int]) -> int:
    """Weights and biases of one MLP with these hidden widths on this data."""
    widths = [facts.n_features, *hidden, facts.n_outputs]
    return sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))


def may_ensemble(exp: Experiment) -> bool:
    """Whether `ensemble_rule` decides `model.ensemble` for `exp` (what is set decides it,
    not the data): left out, no optimizer field set, one seed."""
    given = set_fields(exp)
    return (_section_untouched(given, "model.ensemble", "optimizer")
            and exp.training.seeds == 1)


def ensemble_rule(exp: Experiment, facts: DataFacts) -> tuple[int, str] | None:
    """`model.ensemble`'s value and reason when `may_ensemble(exp)`, else None."""
    if not may_ensemble(exp):
        return None
    weights = n_weights(facts, exp.model.hidden)
    work = ENSEMBLE * facts.n_train * weights
    if work > ENSEMBLE_WORK:
        return 1, (f"one model: {ENSEMBLE} members × {facts.n_train} training rows × "
                   f"{weights} weights = {work:.1e} per epoch, above {ENSEMBLE_WORK:.0e}")
    return ENSEMBLE, (f"{ENSEMBLE} seeds as one population, the mean of their predictions "
                      f"({facts.n_train} training rows × {weights} weights × {ENSEMBLE} "
                      f"within {ENSEMBLE_WORK:.0e} per epoch)")


def ensemble_as_run(exp: Experiment, run: Experiment) -> Experiment:
    """`exp` (`may_ensemble`) resuming `run`: `model.ensemble` as the rule decided it then,
    from the same data."""
    out = _replace(exp, "model.ensemble", run.model.ensemble)
    assert isinstance(out, Experiment)
    return out.with_auto({"model.ensemble": "auto: as the resumed run decided it"})


def auto_fields(exp: Experiment) -> list[str]:
    """The fields of `exp` the rule will decide once the data is loaded (which ones does not
    depend on the data, only on what is set); `model.ensemble` among them when `train` will
    decide it."""
    out = list(default_rule(DataFacts(1, 1, 1, exp.resolved_task), set_fields(exp),
                            exp.training.batch_size))
    return out + ["model.ensemble"] if may_ensemble(exp) else out


def _replace(model: BaseModel, dotted: str, value: Any) -> BaseModel:
    head, _, rest = dotted.partition(".")
    if not rest:
        return model.model_copy(update={head: value})
    return model.model_copy(update={head: _replace(getattr(model, head), rest, value)})


def resolve_defaults(exp: Experiment, facts: DataFacts, *, ensemble: bool = False
                     ) -> tuple[Experiment, dict[str, str]]:
    """`exp` with every field the rule decides and the experiment leaves out filled in, and
    each such field's reason. Idempotent: the filled fields count as set afterwards.
    `ensemble`: decide `model.ensemble` too (`ensemble_rule`; what `train` does, not a
    population's members)."""
    given = set_fields(exp)
    decided = default_rule(facts, given, exp.training.batch_size)
    members = ensemble_rule(exp, facts) if ensemble else None
    if members is not None:
        decided["model.ensemble"] = members
    out: BaseModel = exp
    for dotted, (value, _) in decided.items():
        out = _replace(out, dotted, value)
    assert isinstance(out, Experiment)
    reasons = {k: f"auto: {why}" for k, (_, why) in decided.items()}
    return out.with_auto(reasons), reasons

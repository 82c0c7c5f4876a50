"""One-line problem messages: where a value was written (file:line or `--set KEY`) and what is
wrong with it. Shared by experiment files and sweep files, so both say it the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["Loc", "Problem", "did_you_mean", "locate", "problems_from"]


@dataclass(frozen=True)
class Loc:
    """Where a value was written: a file and its line, or a command-line item (line None)."""

    origin: str  # a file path, or "--set KEY"
    line: int | None = None

    def __str__(self) -> str:
        return self.origin if self.line is None else f"{self.origin}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One fault of one value: printed as `FILE:LINE: dotted.path: message`."""

    where: Loc
    path: str
    message: str

    def __str__(self) -> str:
        if self.where.line is None:  # `--set key: ...` already names the key
            return f"{self.where}: {self.message}"
        return f"{self.where}: {self.path}: {self.message}"


def locate(where: Mapping[str, Loc], path: str, default: Loc) -> Loc:
    """The place of `path`, or of its nearest written parent (a section header)."""
    probe = path
    while probe and probe not in where:
        probe = probe.rpartition(".")[0]
    return where.get(probe, default)


def did_you_mean(key: str, known: Sequence[str]) -> str:
    """'; did you mean 'x'?' for a near miss, else the list of known keys."""
    hint = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if hint:
        return f"; did you mean '{hint[0]}'?"
    return f"; known keys: {', '.join(known)}" if known else ""


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _message(err: Any, root: type[BaseModel]) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        return "unknown key" + did_you_mean(str(loc[-1]), list(parent.model_fields)
                                            if parent else [])
    if kind == "missing":
        return "required"
    msg = "must be a finite number" if kind == "finite_number" else \
        err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return msg if shown[1:-1] in msg else msg + shown


def problems_from(error: ValidationError, root: type[BaseModel], where: Mapping[str, Loc],
                  default: Loc, collapse: Iterable[str] = ()) -> list[Problem]:
    """Every fault of a pydantic error, each placed where its value was written.

    `collapse`: top-level keys reported once as a whole (a key that takes several forms).
    """
    out: list[Problem] = []
    whole = set(collapse)
    for err in error.errors():
        if not err["loc"] and err["type"] == "value_error":
            # a whole-model check reports "dotted.path: problem" lines: place each one
            for line in err["msg"].removeprefix("Value error, ").splitlines():
                path, _, msg = line.partition(": ")
                out.append(Problem(locate(where, path, default), path, msg))
            continue
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in whole and err["type"] != "missing":
            loc = loc[:1]
        path = ".".join(loc)
        problem = Problem(locate(where, path, default), path, _message(err, root))
        if problem not in out:
            out.append(problem)
    return out

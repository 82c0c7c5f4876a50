"""A raw experiment mapping and where each value in it was written: files, `extends:`, `--set`.

    # experiments/l2.yaml
    extends: digits.yaml            # relative to this file; or a list, applied in order
    regularization: {type: l2, strength: 1.0e-3}

`extends` deep-merges the named files under this one: mappings merge key by key, anything else
(numbers, strings, lists) is replaced by the later file. Each value keeps its place (file and
line), so errors point at the file that wrote the value and `fcnet validate --explain` can say
where every value came from.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fcnet_cli.config.problems import Loc
from fcnet_cli.errors import ConfigError
from fcnet_cli.yamlio import apply_overrides, read_config_file

__all__ = ["EXTENDS", "Source", "merge", "read_source", "source_from_mapping", "with_overrides"]

EXTENDS = "extends"
# values that name files: relative ones are relative to the file that wrote them
FILE_RELATIVE = ("data.path", "data.root")


@dataclass
class Source:
    """A raw mapping (no `extends:` left in it) and the place of every dotted path in it."""

    raw: dict[str, Any]
    where: dict[str, Loc] = field(default_factory=dict)
    origin: str = "<config>"  # the file named when a path has no place of its own
    base_dir: Path | None = None  # the top file's folder: relative data paths without a file
    default_name: str | None = None  # output.name when the file sets none (its stem)

    @property
    def default(self) -> Loc:
        return Loc(self.origin, 1)

    def folder_of(self, path: str) -> Path | None:
        """The folder a relative file value at `path` is relative to."""
        loc = self.where.get(path)
        if loc is not None and loc.line is not None and loc.origin != self.origin:
            return Path(loc.origin).parent
        return self.base_dir


def _subtree(where: Mapping[str, Loc], path: str) -> dict[str, Loc]:
    return {k: v for k, v in where.items() if k == path or k.startswith(path + ".")}


def merge(under: Source, over: Source) -> Source:
    """`over` deep-merged onto `under` (a new Source; lists and scalars of `over` replace)."""
    raw, where = copy.deepcopy(under.raw), dict(under.where)

    def walk(dst: dict[str, Any], src: Mapping[str, Any], prefix: str) -> None:
        for key, value in src.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and isinstance(dst.get(key), dict):
                if path in over.where:
                    where[path] = over.where[path]
                walk(dst[key], value, path + ".")
                continue
            for old in _subtree(where, path):
                del where[old]
            where.update(_subtree(over.where, path))
            dst[key] = copy.deepcopy(value)

    walk(raw, over.raw, "")
    return replace(over, raw=raw, where=where)


def source_from_mapping(raw: Any, lines: Mapping[str, int], origin: str,
                        folder: Path | None, chain: tuple[Path, ...] = ()) -> Source:
    """A mapping read from `origin` (its `extends:` resolved against `folder`)."""
    if raw is None:
        raise ConfigError([f"{origin}: empty file (expected a mapping of sections)"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{origin}:1: top level must be a mapping of sections "
                           f"(got {type(raw).__name__})"])
    where = {k: Loc(origin, v) for k, v in lines.items()}
    own = Source({k: v for k, v in raw.items() if k != EXTENDS},
                 {k: v for k, v in where.items() if k != EXTENDS
                  and not k.startswith(EXTENDS + ".")}, origin, folder)
    if EXTENDS not in raw:
        return own
    bases = _read_bases(raw[EXTENDS], where, origin, folder or Path("."), chain)
    merged = Source({}, {}, origin, folder)
    for base in bases:
        merged = merge(merged, base)
    return merge(merged, own)


def _read_bases(names: Any, where: dict[str, Loc], origin: str, folder: Path,
                chain: tuple[Path, ...]) -> list[Source]:
    here = where.get(EXTENDS, Loc(origin, 1))
    if isinstance(names, str):
        names = [names]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ConfigError([f"{here}: {EXTENDS}: expected a file path or a list of paths, "
                           f"relative to this file (got {names!r})"])
    problems, bases = [], []
    for i, name in enumerate(names):
        loc = where.get(f"{EXTENDS}.{i}", here)
        path = folder / name
        if path.resolve() in chain:
            cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
            problems.append(f"{loc}: {EXTENDS}: {name}: extends itself ({cycle})")
            continue
        if not path.is_file():
            problems.append(f"{loc}: {EXTENDS}: {name}: no such file ({path})")
            continue
        try:
            bases.append(read_source(path, chain))
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(problems)
    return bases


def read_source(path: Path, chain: tuple[Path, ...] = ()) -> Source:
    """Read an experiment file and the files it extends. Raises ConfigError."""
    raw, lines = read_config_file(path)
    chain = (*chain, path.resolve())
    source = source_from_mapping(raw, lines, str(path), path.parent, chain)
    return replace(source, origin=str(path), base_dir=path.parent, default_name=path.stem)


def with_overrides(source: Source, items: Iterable[str], prefix: str = "") -> Source:
    """`--set dotted.key=value` items applied on top (each placed at `--set PREFIX.KEY`)."""
    try:
        raw, touched = apply_overrides(source.raw, items)
    except ConfigError as e:
        raise ConfigError([p.replace("--set ", f"--set {prefix}", 1) for p in e.problems]
                          ) from None
    where = dict(source.where)
    for key in sorted(touched, key=len):  # a section before the keys inside it
        for old in _subtree(where, key):
            del where[old]
        where[key] = Loc(f"--set {prefix}{key}")
    return replace(source, raw=raw, where=where)

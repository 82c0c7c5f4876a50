"""Safe YAML reading with line numbers, and dotted `--set` overrides. No torch import."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fcnet_cli.errors import ConfigError

__all__ = ["apply_overrides", "dump_yaml", "load_yaml", "parse_override", "read_config_file"]


# Bounds on hostile input, checked while composing (before anything is built): an alias can
# expand a 500-byte file into billions of nodes ("billion laughs"), deep nesting overflows
# Python's recursion, and int() refuses over 4300 digits. Real experiment files need none.
MAX_DEPTH = 50
MAX_INT_DIGITS = 30
_INT_TAG = "tag:yaml.org,2002:int"


class _Refused(Exception):
    """Input refused by a bound above; `line` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float, refuses anchors/aliases and deep nesting."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _Refused(event.start_mark.line + 1,
                           f"YAML {kind}{event.anchor} is not allowed (anchors and aliases are "
                           "refused in fcnet files; write the values out)")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark.line + 1,
                               f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _build(node: yaml.Node, loader: _Loader, path: str, lines: dict[str, int],
           problems: list[str], origin: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        raise yaml.constructor.ConstructorError(
            None, None, f"tag {node.tag!r} is not allowed", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        loader.flatten_mapping(node)
        for knode, vnode in node.value:
            key = _build(knode, loader, path, {}, problems, origin)
            line = knode.start_mark.line + 1
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str | int | float | bool) or key is None:
                problems.append(f"{origin}:{line}: {path or '<top>'}: keys must be plain scalars")
                continue
            if key in seen:
                problems.append(f"{origin}:{line}: {where}: duplicate key "
                                f"(first defined on line {seen[key]})")
                continue
            seen[key] = line
            lines.setdefault(where, line)
            out[key] = _build(vnode, loader, where, lines, problems, origin)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, loader, f"{path}.{i}", lines, problems, origin)
                for i, v in enumerate(node.value)]
    if node.tag == _INT_TAG and len(str(node.value)) > MAX_INT_DIGITS:
        where = f"{origin}:{node.start_mark.line + 1}: " + (f"{path}: " if path else "")
        problems.append(f"{where}integer too large ({len(str(node.value))} digits, "
                        f"at most {MAX_INT_DIGITS})")
        return None
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, origin: str = "<string>") -> tuple[Any, dict[str, int]]:
    """Parse YAML safely. Returns (data, {dotted path: line}); raises ConfigError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        problems: list[str] = []
        lines: dict[str, int] = {}
        data = _build(node, loader, "", lines, problems, origin)
    except _Refused as e:
        raise ConfigError([f"{origin}:{e.line}: {e}"]) from None
    except yaml.constructor.ConstructorError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError([f"{origin}:{line}: unsupported YAML tag: {e.problem}"]) from None
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError([f"{origin}:{line}: malformed YAML: {e.problem}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{origin}: malformed YAML: {e}"]) from None
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    return data, lines


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes a shared object out again instead of as an anchor and alias
    (which `load_yaml` refuses)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any, *, sort_keys: bool = False) -> str:
    """YAML text that `load_yaml` reads back (plain types, no anchors or aliases)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=sort_keys)


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value parsed as a YAML scalar or flow list)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", key):
        raise ConfigError([f"--set {item}: expected dotted.key=value"])
    value, _ = load_yaml(raw, origin=f"--set {key}") if raw.strip() else (None, {})
    return key, value


def apply_overrides(raw: dict[str, Any], items: Iterable[str]) -> tuple[dict[str, Any], set[str]]:
    """Apply `--set` items to a raw mapping (a copy); returns it and the overridden paths."""
    out = copy.deepcopy(raw)
    touched: set[str] = set()
    for item in items:
        key, value = parse_override(item)
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError([f"--set {item}: {'.'.join(parts[:i + 1])} is not a section"])
            node = nxt
        node[parts[-1]] = value
        touched.add(key)
    return out, touched


def read_config_file(p: Path) -> tuple[Any, dict[str, int]]:
    if not p.exists():
        raise ConfigError([f"{p}: no such file"])
    if not p.is_file():
        raise ConfigError([f"{p}: not a regular file"])
    if p.stat().st_size > 1_000_000:
        raise ConfigError([f"{p}: too large for an experiment file (over 1 MB)"])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{p}: cannot read: {e}"]) from None
    return load_yaml(text, str(p))

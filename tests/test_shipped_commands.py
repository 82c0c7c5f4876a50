"""Every `fcnet` command the project suggests runs as written, in order, from a fresh folder.

What this checks, exactly:
- the commands are taken from the README's ```sh blocks (lines starting `.venv/bin/fcnet` or
  `fcnet`) and from the comment lines `#   fcnet ...` of the shipped experiment and sweep files
  under experiments/, in document order;
- they run in-process (typer's CliRunner) in an empty folder holding a copy of experiments/,
  one after the other, so a command may use what an earlier one left (`runs/digits/latest`);
- each exits 0 without a traceback, and a `--json` command prints valid JSON;
- for speed, the copied experiment files train 1 epoch (`training.epochs`, and a sweep's
  pinned `training.epochs`), sweeps run 1 seed and keep the first two values of their first
  two parameters and the first value of the others (reg_vs_momentum: 3 configurations instead
  of 126); nothing else differs from the shipped files, and every `--set` in a command is
  applied as written;
- the only commands not run are listed in SKIPPED with the reason (a PostgreSQL server, a
  placeholder file name), and the test fails if a suggested command is skipped for any other
  reason or if SKIPPED names a command that is no longer suggested.
Commands that are not `fcnet` (make, python benchmarks/...) are not run here.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fcnet_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SKIPPED = {
    "fcnet sweep SWEEP.yaml --storage postgresql://user:password@host/db":
        "needs a PostgreSQL server (tests/test_sweep_postgres.py runs it when one is given)",
    "fcnet dashboard runs/quick":
        "serves until Ctrl-C (tests/test_dashboard.py starts it and reads its HTTP API)",
}


def readme_commands(text: str) -> list[str]:
    """fcnet command lines in the README's ```sh blocks, comments stripped."""
    found, in_sh = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_sh = line.strip() == "```sh"
            continue
        stripped = line.strip().removeprefix(".venv/bin/")
        if in_sh and stripped.startswith("fcnet "):
            found.append(shlex.join(shlex.split(stripped, comments=True)))
    return found


def comment_commands(path: Path) -> list[str]:
    """`#     fcnet ...` lines of a YAML file's comments."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s+(fcnet .+)$", line)
        if m:
            found.append(shlex.join(shlex.split(m.group(1), comments=True)))
    return found


def suggested() -> list[tuple[str, str]]:
    """(where, command) for every suggested command, in document order."""
    out = [("README.md", c) for c in readme_commands((ROOT / "README.md").read_text())]
    for path in sorted((ROOT / "experiments").rglob("*.yaml")):
        out += [(str(path.relative_to(ROOT)), c) for c in comment_commands(path)]
    return out


def _values(spec: Any, n: int) -> Any:
    """A parameter's first n values (a list), or n grid points (a range with num)."""
    if isinstance(spec, list):
        return spec[:n]
    if isinstance(spec, dict) and "num" in spec:
        return {**spec, "num": min(n, spec["num"])}
    return spec


def _fast_copy(src: Path, dst: Path) -> None:
    """experiments/ with 1 training epoch and 1 seed everywhere (see the module docstring)."""
    shutil.copytree(src, dst)
    for path in dst.rglob("*.yaml"):
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            continue
        if "parameters" in data:  # a sweep
            data["seeds"] = 1
            data["parameters"] = {k: _values(v, 2 if i < 2 else 1)
                                  for i, (k, v) in enumerate(data["parameters"].items())}
            if "training.epochs" in data["parameters"]:
                data["parameters"]["training.epochs"] = [1]
            if isinstance(data.get("base"), dict):
                data["base"].setdefault("training", {})["epochs"] = 1
        else:
            data.setdefault("training", {})["epochs"] = 1
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_commands_are_found() -> None:
    commands = [c for _, c in suggested()]
    assert len(commands) >= 20
    assert "fcnet eval runs/digits/latest --split val --json" in commands
    assert not [c for c in commands if "<" in c]  # no placeholder to paste a run id into
    assert set(SKIPPED) <= set(commands)


@pytest.mark.slow
def test_every_suggested_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fast_copy(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    ran = []
    for where, command in suggested():
        if command in SKIPPED:
            continue
        args = shlex.split(command)[1:]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (where, command, result.output[-2000:])
        assert "Traceback" not in result.output, (where, command)
        if "--json" in args:
            json.loads(result.stdout)
        ran.append(command)
    assert len(ran) == len(suggested()) - len(SKIPPED)
    # The prose next to the tour: Ctrl-C'd runs resume with `--resume runs/digits/latest`;
    # on a finished run it says so (exit 2) instead of training again.
    resume = runner.invoke(app, ["train", "--resume", "runs/digits/latest"])
    assert resume.exit_code == 2 and "already finished" in resume.stderr


def _readme_experiment() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("### The experiment file"):]
    block = block[block.index("```yaml\n") + 8:]
    return block[:block.index("```")].splitlines()


def test_readme_example_is_digits_and_marks_every_non_default() -> None:
    """The README's full example is experiments/digits.yaml; a value that is not the schema
    default says `default: X` with the true default, and no other value differs from it."""
    from fcnet_cli.config import Experiment, flatten, load_experiment, validate_experiment

    lines = _readme_experiment()
    shown = validate_experiment(yaml.safe_load("\n".join(lines)))
    digits = load_experiment(ROOT / "experiments" / "digits.yaml")
    ignore = ("output.name", "data.root", "data.path")
    a, b = flatten(shown.model_dump(mode="json")), flatten(digits.model_dump(mode="json"))
    assert {k: v for k, v in a.items() if k not in ignore} == \
        {k: v for k, v in b.items() if k not in ignore}
    defaults = flatten(Experiment().model_dump(mode="json"))
    section, checked = "", 0
    for line in lines:
        m = re.match(r"^(\s*)(\w+):\s*(.*?)\s*(#.*)?$", line)
        assert m, line
        indent, key, value, comment = m.groups()
        if not value:
            section = key
            continue
        path = f"{section}.{key}" if indent else key
        written = yaml.safe_load(value)
        if isinstance(written, dict):  # a flow mapping: each of its keys
            pairs = {f"{path}.{k}": v for k, v in written.items()}
        else:
            pairs = {path: written}
        note = re.search(r"default: (.+)$", comment or "")
        for dotted, v in pairs.items():
            if note:
                assert yaml.safe_load(note.group(1)) == defaults[dotted] != v, line
            else:
                assert v == defaults[dotted], (line, defaults[dotted])
            checked += 1
    assert checked >= 25

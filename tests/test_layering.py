"""Layering (DESIGN.md): the engine imports neither typer nor rich; only display.py imports rich
and only cli.py imports typer; the fast paths (config, display, the CLI module) never load torch.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcnet_cli"
ENGINE = ["config", "errors", "results", "model", "data", "members", "records", "population",
          "optim", "train", "checkpoint", "evaluate", "sweep", "report"]
UI = {"display", "cli"}


def _loaded_after(statement: str) -> set[str]:
    """Top-level module names in sys.modules after running `statement` in a fresh interpreter."""
    code = (f"import sys\n{statement}\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def _existing(names: list[str]) -> list[str]:
    return [n for n in names if (PACKAGE / f"{n}.py").exists()]


@pytest.mark.parametrize("module", _existing(ENGINE))
def test_engine_module_does_not_import_typer_or_rich(module: str) -> None:
    loaded = _loaded_after(f"import fcnet_cli.{module}")
    assert not loaded & {"typer", "rich", "click"}, f"fcnet_cli.{module} pulls in a UI library"


@pytest.mark.parametrize("module", ["config", "errors", "results", "display", "cli"])
def test_fast_path_modules_do_not_import_torch(module: str) -> None:
    assert "torch" not in _loaded_after(f"import fcnet_cli.{module}")


def _importers(library: str) -> set[str]:
    pattern = re.compile(rf"^\s*(?:import|from)\s+{library}(?:\.|\s|$)", re.MULTILINE)
    return {p.stem for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text("utf-8"))}


def test_only_display_imports_rich() -> None:
    assert _importers("rich") <= {"display"}


def test_only_cli_imports_typer_or_click() -> None:
    assert _importers("typer") <= {"cli"}
    assert not _importers("click")


def test_import_scan_sees_the_ui_modules() -> None:
    # Guards the two tests above against a pattern that silently matches nothing.
    assert _importers("rich") == {"display"}
    assert _importers("typer") == {"cli"}

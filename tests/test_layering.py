"""Layering (DESIGN.md): the engine imports neither typer nor rich; only the display package
imports rich and only the cli package imports typer; the fast paths (config, display, the CLI)
never load torch.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcnet_cli"
UI = {"display", "cli"}
# Every other module is engine: config, results, data, model, population, optim, train, ...
ENGINE = sorted(p.stem for p in PACKAGE.glob("*.py")
                if p.stem not in UI and not p.stem.startswith("__"))


def _first_import_of(modules: list[str], forbidden: set[str]) -> dict[str, list[str]]:
    """Import `modules` in order in one fresh interpreter; after each, which forbidden
    top-level packages are loaded. The first module listing one is the one that imports it."""
    code = (
        "import importlib, json, sys\n"
        f"forbidden = {sorted(forbidden)!r}\n"
        "seen = {}\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('fcnet_cli.' + name)\n"
        "    seen[name] = [f for f in forbidden if f in sys.modules]\n"
        "print(json.dumps(seen))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_engine_modules_do_not_import_typer_or_rich() -> None:
    assert {"config", "results"} <= set(ENGINE)
    seen = _first_import_of(ENGINE, {"typer", "rich", "click"})
    offenders = {name: libs for name, libs in seen.items() if libs}
    assert not offenders, f"first engine module pulling in a UI library: {offenders}"


def test_fast_path_modules_do_not_import_torch() -> None:
    seen = _first_import_of(["config", "errors", "results", "display", "cli"], {"torch"})
    assert not any(seen.values()), seen


def _importers(library: str) -> set[str]:
    pattern = re.compile(rf"^\s*(?:import|from)\s+{library}(?:\.|\s|$)", re.MULTILINE)
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts)
            for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text("utf-8"))}


def _in_display(modules: set[str]) -> bool:
    return all(m == "display" or m.startswith("display.") for m in modules)


def test_only_display_imports_rich() -> None:
    assert _in_display(_importers("rich"))


def test_only_cli_imports_typer_or_click() -> None:
    assert all(m == "cli" or m.startswith("cli.") for m in _importers("typer"))
    assert not _importers("click")


def test_import_scan_sees_the_ui_modules() -> None:
    # Guards the two tests above against a pattern that silently matches nothing.
    assert {"display.base", "display.train", "display.sweep"} <= _importers("rich")
    assert {"cli.app", "cli.run", "cli.describe", "cli.sweep"} <= _importers("typer")

"""Layering (DESIGN.md), checked by package: imports point one way,

    leaves (config, yamlio, errors, events, metrics) ← engine ← sweep / analysis / serve ← studies
                                                                        ← display / cli

only `display` imports rich, only `cli` imports typer, and the fast paths (the leaves, the
display, the CLI's `--help`) never load torch.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcnet_cli"
LEAVES = {"config", "yamlio", "errors", "events", "metrics"}
# What each layer may import from fcnet_cli (besides itself). `__init__` is the lazy public API.
ALLOWED = {
    "leaves": {"leaves"},
    "engine": {"leaves"},
    "analysis": {"leaves", "engine"},
    "sweep": {"leaves", "engine", "analysis"},
    "serve": {"leaves", "engine"},
    "studies": {"leaves", "engine", "analysis", "sweep"},
    "display": {"leaves", "analysis"},
    "cli": {"leaves", "engine", "analysis", "sweep", "serve", "display", "studies", "tracking"},
    # MLflow tracking of runs, groups and sweeps (mlflow imported only when asked for)
    "tracking": {"leaves", "engine", "analysis", "serve"},
    # the scikit-learn estimators: a Python skin beside the CLI (display only when verbose)
    "estimators": {"leaves", "engine", "serve", "display"},
}


def _layer(module: str) -> str:
    """'fcnet_cli.engine.train.loop' -> 'engine'; 'fcnet_cli.config' -> 'leaves'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    return "leaves" if parts[1] in LEAVES else parts[1]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        out[name] = p
    return out


def _imports(path: Path) -> set[str]:
    """Every module an import statement names, including `from pkg import module`
    (module-level and function-level imports alike: `ast.walk` sees both)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _package(module: str, modules: dict[str, Path]) -> str:
    """The package a module lives in: itself for a package (`__init__`), else its parent."""
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def test_every_module_belongs_to_a_known_layer() -> None:
    layers = {_layer(m) for m in _modules()} - {"api"}
    assert layers <= set(ALLOWED), layers - set(ALLOWED)
    assert {"leaves", "engine", "sweep", "analysis", "studies", "display", "cli"} <= layers


def test_imports_point_one_way() -> None:
    modules = _modules()
    bad = []
    for name, path in modules.items():
        src = _layer(name)
        if src == "api":
            continue
        for target in _imports(path):
            if not target.startswith("fcnet_cli") or target not in modules:
                continue
            dst = _layer(target)
            if dst not in (src, "api") and dst not in ALLOWED[src]:
                bad.append(f"{name} -> {target}")
    assert not bad, bad


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    graph = {m: {t for t in _imports(p) if t in modules and t != m and not
                 m.startswith(t + ".")} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def _third_party(library: str) -> set[str]:
    return {_layer(name) for name, p in _modules().items()
            if any(t == library or t.startswith(library + ".") for t in _imports(p))}


def test_only_display_imports_rich_and_only_cli_imports_typer() -> None:
    assert _third_party("rich") == {"display"}
    assert _third_party("typer") == {"cli"}
    assert not _third_party("click")


def _loaded_after(modules: list[str], watched: set[str]) -> dict[str, list[str]]:
    """Import `modules` in order in one fresh interpreter; after each, which watched
    top-level packages are loaded."""
    code = (
        "import importlib, json, sys\n"
        f"watched = {sorted(watched)!r}\n"
        "seen = {}\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    seen[name] = [f for f in watched if f in sys.modules]\n"
        "print(json.dumps(seen))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_engine_sweep_and_analysis_load_no_ui_library() -> None:
    below_ui = {"leaves", "engine", "sweep", "analysis", "studies", "serve"}
    names = sorted(m for m in _modules()
                   if _layer(m) in below_ui and not m.endswith("__main__"))
    seen = _loaded_after(names, {"typer", "rich", "click"})
    offenders = {name: libs for name, libs in seen.items() if libs}
    assert not offenders, f"first module pulling in a UI library: {offenders}"


def test_fast_path_modules_do_not_import_torch() -> None:
    fast = ["fcnet_cli", *(f"fcnet_cli.{m}" for m in sorted(LEAVES)), "fcnet_cli.display",
            "fcnet_cli.cli"]
    seen = _loaded_after(fast, {"torch"})
    assert not any(seen.values()), seen


# The engine's rooms (fcnet_cli/engine/__init__.py): data and storage never reach into
# training, storage never evaluates, data never touches storage.
ROOM_RULES = {
    "fcnet_cli.engine.data": ("fcnet_cli.engine.train", "fcnet_cli.engine.store"),
    "fcnet_cli.engine.store": ("fcnet_cli.engine.train", "fcnet_cli.engine.evaluate",
                               "fcnet_cli.engine.data.load"),
}


def _room_violations(modules: dict[str, Path]) -> list[str]:
    bad = []
    for name, path in modules.items():
        for room, forbidden in ROOM_RULES.items():
            if name != room and not name.startswith(room + "."):
                continue
            bad += [f"{name} -> {t}" for t in sorted(_imports(path)) if t in modules
                    and any(t == f or t.startswith(f + ".") for f in forbidden)]
    return bad


def test_engine_rooms_import_one_way() -> None:
    assert not _room_violations(_modules())


def _private_imports(modules: dict[str, Path]) -> list[str]:
    """Imports of a `_private` name (or module) of fcnet_cli from another package:
    `from fcnet_cli.engine.evaluate import _x` in `fcnet_cli.serve.model`. Inside one package
    (`fcnet_cli.cli.lrfind` using `fcnet_cli.cli.app._run`) private names are fair game."""
    bad = []
    for name, path in modules.items():
        here = _package(name, modules)
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                pairs = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                pairs = [tuple(a.name.rsplit(".", 1)) for a in node.names
                         if a.name in modules and "." in a.name]
            else:
                continue
            bad += [f"{name} imports {n} from {m}" for m, n in pairs
                    if n.startswith("_") and not n.startswith("__")
                    and _package(m, modules) != here]
    return bad


def test_no_private_names_cross_packages() -> None:
    assert not _private_imports(_modules())


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    """The checks above see function-level imports and private names (they can fail)."""
    files = {
        "fcnet_cli.engine.store.bad": "def f():\n"
                                      "    from fcnet_cli.engine.train.loop import train\n",
        "fcnet_cli.engine.data.bad": "from fcnet_cli.engine.store import records\n",
        "fcnet_cli.serve.bad": "def g():\n    from fcnet_cli.engine.evaluate import _hidden\n",
        "fcnet_cli.serve.fine": "from fcnet_cli.serve.bad import _shared\n",
        "fcnet_cli.engine.train.loop": "", "fcnet_cli.engine.store.records": "",
        "fcnet_cli.engine.evaluate": "",
    }
    modules = {}
    for name, text in files.items():
        modules[name] = tmp_path / f"{name}.py"
        modules[name].write_text(text)
    assert _room_violations(modules) == [
        "fcnet_cli.engine.store.bad -> fcnet_cli.engine.train.loop",
        "fcnet_cli.engine.data.bad -> fcnet_cli.engine.store.records"]
    assert _private_imports(modules) == [
        "fcnet_cli.serve.bad imports _hidden from fcnet_cli.engine.evaluate"]

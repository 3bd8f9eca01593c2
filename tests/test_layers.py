"""The package's modules form layers: no import circle, and no module imports a higher layer.

Every module under ``src/comixup`` is parsed with :mod:`ast`; each ``import`` and
``from ... import`` statement, at module level or inside a function, is an edge (relative
imports resolved against the module's package). ``import comixup.a.b`` and
``from comixup.a import b`` (``b`` a submodule) are edges to ``comixup.a.b``; ``from comixup.a
import name`` (``name`` not a submodule) is an edge to the package ``comixup.a``, whose
``__init__`` imports are the package's own. Nothing is imported: the test reads the source.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "comixup"

#: The layers, lowest first. A module belongs to the layer that names it or, failing that, its
#: nearest package below ``comixup`` (``comixup`` itself is the package's ``__init__`` only); it
#: may import modules of its own layer and of lower ones only.
LAYERS: list[tuple[str, ...]] = [
    ("comixup._errors",),  # InputError, the type of every user error, below every check
    ("comixup._checks", "comixup._precision", "comixup._provenance", "comixup._validation"),
    ("comixup.losses", "comixup.solver"),
    ("comixup.saliency",),
    ("comixup.mixers",),
    ("comixup.vat",),
    ("comixup.models", "comixup.data"),
    ("comixup.methods",),
    ("comixup",),  # the package's own __init__: the batch transforms, VAT and TrainStep
    ("comixup.config",),
    ("comixup.checkpoint",),
    ("comixup._args",),  # the command lines' argument types, built on the config's fields
    ("comixup.run",),  # what training, evaluation and the analyses rebuild a run with
    ("comixup.evaluate",),
    ("comixup.train",),  # the engine evaluates every epoch
    ("comixup.analysis",),
    ("comixup.study",),
    ("comixup.tools", "comixup.cli"),  # the benchmarks and the command line, on top of the rest
    ("comixup.__main__",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _resolve(name: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute name of ``from <node.module> import ...`` inside module ``name``."""
    if not node.level:
        return node.module or ""
    base = name.split(".")
    if not is_package:  # a module's relative imports start at its package
        base = base[:-1]
    if node.level > 1:
        base = base[:-(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node, is_package)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                # ``import comixup.a.b`` names a module; keep the longest existing prefix
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    found.add(target)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` over every module of the package (read once)."""
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module`` (its own entry or its nearest package's)."""
    name = module
    while True:
        for index, layer in enumerate(LAYERS):
            if name in layer:
                return index
        parent = name.rsplit(".", 1)[0]
        if "." not in name or parent == PACKAGE:
            raise KeyError(f"{module} belongs to no layer: add it to LAYERS")
        name = parent


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "comixup.checkpoint" in graph["comixup.train.engine"]
    assert "comixup.evaluate" in graph["comixup.train.engine"]  # inside a method
    assert "comixup.mixers" in graph["comixup"]  # a package's __init__
    assert "comixup.run" in graph["comixup.evaluate.suite"]


def test_the_tools_sit_on_top_and_nothing_below_imports_them():
    graph = import_graph()
    assert layer_of("comixup.tools.bench_gpu") == layer_of("comixup.cli")
    assert "comixup.tools.bench" in graph["comixup.cli"]
    users = sorted(m for m, targets in graph.items()
                   if any(t.startswith("comixup.tools") for t in targets)
                   and not m.startswith("comixup.tools"))
    assert users == ["comixup.cli"], users


def test_the_run_layer_stays_below_training_and_evaluation():
    allowed = ("comixup._checks", "comixup._errors", "comixup.checkpoint", "comixup.config",
               "comixup.data", "comixup.methods", "comixup.mixers", "comixup.models")
    imported = import_graph()["comixup.run"]
    assert imported and all(t.startswith(allowed) for t in imported), sorted(imported)


def test_find_cycle_reports_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)
    assert layer_of("comixup.train.engine") == layer_of("comixup.train")
    with pytest.raises(KeyError, match="comixup.newcomer belongs to no layer"):
        layer_of("comixup.newcomer")


@pytest.mark.parametrize("module", sorted(import_graph()))
def test_imports_only_same_or_lower_layers(module):
    graph = import_graph()
    upward = sorted(t for t in graph[module] if layer_of(t) > layer_of(module))
    assert not upward, (f"{module} (layer {LAYERS[layer_of(module)]}) imports higher layers: "
                        + ", ".join(f"{t} ({LAYERS[layer_of(t)]})" for t in upward))

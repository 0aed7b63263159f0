"""The package's import graph, read from the sources with every import counted (function-local ones too): no cycle
anywhere inside ``nbtune``, and no edge from a lower layer to a higher one.

The layers, lowest first (a module may import its own layer and those below it):

    render, _lazy                text/HTML builders, lazy attributes: plain Python, no nbtune
    core.common                  errors, seeding, interrupts, change notification, version, default model
    core.model                   architecture, counts, freezing, quantization, precision, memory, fit, tree
    core.data                    readers, features, chat rendering, batching, packing
    core.tasks                   what is predicted and scored, heads, generation
    core.adapters                peft methods, targets, attach/merge
    core.objectives              what loss trains a task (when an objective is not the task's own)
    core.training                config, events, callbacks, the loop, checkpoints, run folders
    core.session                 Session, load, save/reload, recipe and GGUF export, preview
    core.recipes                 recipe text -> Recipe -> a built session
    core.workflows               a recipe end to end, races and comparisons, resume
    core (package), examples     the lazy public names; the bundled and public example data
    ui                           widgets and figures
    magics, cli, notebooks, ...  the faces
    nbtune (package)             the public API and the extension entry point
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbtune

PACKAGE = Path(nbtune.__file__).parent
ROOT = PACKAGE.parent

LAYERS: list[tuple[str, ...]] = [
    ("nbtune.render", "nbtune._lazy"),
    ("nbtune.core.common",),
    ("nbtune.core.model",),
    ("nbtune.core.data",),
    ("nbtune.core.tasks",),
    ("nbtune.core.adapters",),
    ("nbtune.core.objectives",),
    ("nbtune.core.training",),
    ("nbtune.core.session",),
    ("nbtune.core.recipes",),
    ("nbtune.core.workflows",),
    ("nbtune.core", "nbtune.examples"),
    ("nbtune.ui",),
    ("nbtune.magics", "nbtune.cli", "nbtune.notebooks", "nbtune.quickstart", "nbtune.__main__"),
    ("nbtune",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The index of the layer holding ``module``: its longest matching prefix in ``LAYERS``."""
    best = (-1, -1)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                best = max(best, (len(prefix), index))
    assert best[1] >= 0, f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return best[1]


def imported_modules(module: str) -> set[str]:
    """The nbtune modules ``module`` imports anywhere in its file (relative imports resolved; ``from pkg import
    name`` counts ``pkg.name`` when that is a module, else ``pkg``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # `import nbtune.core.x.attr` style: the module part
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle_and_an_upward_edge():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("nbtune.core.training.loop") > layer_of("nbtune.core.tasks.base") > layer_of("nbtune.core.model")
    assert layer_of("nbtune.core.session.session") > layer_of("nbtune.core.training.loop")


def test_no_import_cycle_inside_nbtune():
    found = cycles(GRAPH)
    assert not found, "import cycles (function-local imports included):\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_import_goes_down_the_layers():
    upward = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
                    for m, targets in GRAPH.items() for t in targets if layer_of(t) > layer_of(m))
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_the_core_is_grouped_into_layer_packages():
    """nbtune/core holds the layer packages and its own __init__, no loose modules."""
    loose = sorted(p.name for p in (PACKAGE / "core").glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules directly in nbtune/core: {loose}; put each in the layer package it belongs to"

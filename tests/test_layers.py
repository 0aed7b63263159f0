"""The package's layering, checked on the sources: the core never reaches up into the package or its notebook
layers, no module borrows another's private names, every exception lives in core/common/errors.py and is exported, and
ruff (pyflakes, import order, E402) is clean."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import nbtune

PACKAGE = Path(nbtune.__file__).parent
ROOT = PACKAGE.parent


def _imports(path: Path):
    """(absolute module name, imported names) of every import in ``path``, relative imports resolved."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, [a.name for a in node.names]


def _sources(sub: str = "") -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def test_core_imports_nothing_above_it():
    for path in _sources("core"):
        for name, names in _imports(path):
            if name == "nbtune" or name.startswith(("nbtune.ui", "nbtune.magics", "nbtune.render.", "nbtune.cli")):
                if name == "nbtune.render" or name.startswith("nbtune.render."):
                    continue  # text/HTML builders are plain Python, imported lazily by __repr__
                pytest.fail(f"{path.relative_to(ROOT)} imports {name} {names}: the core must not depend on it")


def test_no_private_names_cross_modules():
    for path in _sources():
        for name, names in _imports(path):
            if name.startswith("nbtune"):
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                assert not private, f"{path.relative_to(ROOT)} imports private {private} from {name}"


def test_every_exception_lives_in_errors_and_is_exported():
    from nbtune.core.common import errors

    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and path.name != "errors.py":
                pytest.fail(f"{path.relative_to(ROOT)} defines {node.name}; exceptions belong in core/common/errors.py")
    defined = {n for n, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)}
    assert defined <= set(nbtune.__all__) and all(getattr(nbtune, n) is getattr(errors, n) for n in defined)


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "nbtune", "tests", "bench", "scripts"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]

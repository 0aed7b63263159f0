"""`import nbtune` and `%load_ext nbtune` stay light: torch, transformers and matplotlib load when first needed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "accelerate", "matplotlib", "ipywidgets")


def _imported_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_nbtune_loads_no_heavy_library():
    assert _imported_after("import nbtune") == []


def test_load_ext_registers_the_magics_without_loading_the_model_side():
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'nbtune')\n"
            "assert 'nbtune' in ip.magics_manager.magics['line'] and 'finetune' in ip.magics_manager.magics['cell']")
    assert _imported_after(code) == []


@pytest.mark.parametrize("package", ["nbtune", "nbtune.core", "nbtune.ui"])
def test_every_public_name_resolves(package):
    import importlib

    module = importlib.import_module(package)
    names = getattr(module, "__all__", None) or list(module.LAZY_NAMES)
    for name in names:
        assert getattr(module, name) is not None, name
    assert set(module.LAZY_NAMES) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018

"""Colab's and Kaggle's runtimes as they are: their frontend packages stay put when nbtune is installed, and the
quickstart, freezing and magics notebooks run in a kernel of that environment, Stop button included.

The environments are built by scripts/hosted_runtime.py from requirements/hosted/*.txt (once per change of the
lists or of pyproject.toml; about 90 s each, then only nbtune is reinstalled when its code changes).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from nbtune.notebooks import execute, outputs

from kernel_helpers import click_stop_mid_run, run, start_kernel, stop_kernel
from test_tutorials import BUDGETS, EXPECT

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("hosted_runtime", ROOT / "scripts" / "hosted_runtime.py")
hosted_runtime = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hosted_runtime)

RUNTIMES = sorted(p.stem for p in (ROOT / "requirements" / "hosted").glob("*.txt"))
# each notebook's saved picture: the dashboard's final curves (a display id replaced the live widget, which
# ipywidgets 7 needs nbtune's own bundle for), or the freezing widget's static tree beside its widget view
NOTEBOOKS = {"quickstart": "nbtune-dashboard", "freezing": "nbtune-freezer", "magics": "nbtune-dashboard"}


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request):
    report = hosted_runtime.build(request.param)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [report["jupyter_path"], old]))
    yield report
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def test_installing_nbtune_moves_no_frontend_package(runtime):
    listed = hosted_runtime.listed(runtime["runtime"])
    assert runtime["install_ok"], runtime["install_output"]
    assert runtime["pip_check_ok"], runtime["pip_check"]  # no conflict reported
    assert runtime["frontend_moved"] == {} and runtime["listed_moved"] == {}
    assert all(runtime["frontend"][p] == listed[p] for p in hosted_runtime.FRONTEND)


def test_notebooks_run_in_the_runtime_kernel(runtime, tmp_path):
    km, kc = start_kernel(runtime["kernel_name"], cwd=str(tmp_path))
    try:  # the kernel really is the runtime's: its IPython and ipywidgets, nbtune installed there (not this tree)
        seen = run(kc, "import IPython, ipywidgets, nbtune; print(IPython.__version__, ipywidgets.__version__, "
                       "nbtune.__file__)").split()
    finally:
        stop_kernel(km, kc)
    listed = hosted_runtime.listed(runtime["runtime"])
    assert seen[:2] == [listed["ipython"], listed["ipywidgets"]] and seen[2].startswith(runtime["env"])
    for name in NOTEBOOKS:
        nb, written, _ = execute(ROOT / "notebooks" / f"{name}.ipynb", tmp_path / name, html=False,
                                 parameters=BUDGETS.get(name), cwd=ROOT / "notebooks", timeout=600,
                                 kernel_name=runtime["kernel_name"])
        htmls = [o["data"]["text/html"] for o in outputs(nb, "text/html")]
        text = " ".join(str(o.get("text", "")) for o in outputs(nb, "stream")) + " ".join(htmls)
        assert EXPECT.get(name, "accuracy before") in text, name
        pictures = [h for h in htmls if NOTEBOOKS[name] in h]
        assert pictures and (NOTEBOOKS[name] != "nbtune-dashboard" or all("data:image/png" in h for h in pictures))


def test_stop_button_in_the_runtime_kernel(runtime, tiny_dirs, tmp_path):
    km, kc = start_kernel(runtime["kernel_name"], cwd=str(tmp_path))
    try:
        assert click_stop_mid_run(kc, tiny_dirs["bert"]) < 5
    finally:
        stop_kernel(km, kc)

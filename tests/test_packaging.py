"""The release artefacts as CI builds them: an sdist and a wheel whose metadata is valid and complete (Python
3.10-3.13, dependency ranges that keep hosted runtimes' frontends) and which hold every subpackage and the
package data the tutorials and the quickstart need."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import nbtune

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ["nbtune/py.typed", "nbtune/examples/reviews.csv", "nbtune/examples/wnut17_sample.conll",
                "nbtune/examples/scitldr_sample.jsonl", "nbtune/examples/gsm8k_sample.jsonl"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (setuptools) comes from the dev environment, so no index is needed
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def _subpackages() -> list[str]:
    return sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "nbtune").rglob("__init__.py")
                  if "__pycache__" not in p.parts)


def test_twine_accepts_both(dist):
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_wheel_holds_every_subpackage_and_the_package_data(dist):
    wheel = next(dist.glob("nbtune-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert all(f"{package}/__init__.py" in names for package in _subpackages())
    assert all(path in names for path in PACKAGE_DATA)
    assert not any(n.startswith(("tests/", "bench/", "notebooks/")) for n in names)


def test_the_sdist_holds_the_sources_and_the_package_data(dist):
    sdist = next(dist.glob("nbtune-*.tar.gz"))
    root = sdist.name.removesuffix(".tar.gz")
    names = set(tarfile.open(sdist).getnames())
    assert all(f"{root}/{package}/__init__.py" in names for package in _subpackages())
    assert all(f"{root}/{path}" in names for path in PACKAGE_DATA)
    assert {f"{root}/pyproject.toml", f"{root}/README.md"} <= names


def test_wheel_metadata(dist):
    wheel = next(dist.glob("nbtune-*.whl"))
    archive = zipfile.ZipFile(wheel)
    meta = Parser().parsestr(archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode())
    assert meta["Name"] == "nbtune" and meta["Version"] == nbtune.__version__
    assert meta["Requires-Python"] == ">=3.10"
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in range(10, 14)} <= set(meta.get_all("Classifier"))
    requires = meta.get_all("Requires-Dist")
    # ranges that leave Colab's IPython 7.34 and ipywidgets 7.7 (and Kaggle's 8.1) where they are
    assert "ipython>=7.34" in requires and "ipywidgets<9,>=7.7" in requires
    base = [r for r in requires if "extra ==" not in r]  # what a user's install asks for
    assert not any(r.startswith(("ipykernel", "jupyter-client", "jupyter_client", "traitlets", "tornado")) for r in base)
    assert any(u.startswith("Repository, https://github.com/") for u in meta.get_all("Project-URL"))
    assert meta["Description-Content-Type"] == "text/markdown" and "%load_ext nbtune" in meta.get_payload()


def test_the_code_runs_on_python_310():
    """requires-python says 3.10: vermin finds no newer stdlib module, syntax or API in the package or tests."""
    proc = subprocess.run([str(Path(sys.executable).parent / "vermin"), "--target=3.10-", "--violations", "--eval-annotations",
                           "--no-tips", str(ROOT / "nbtune"), str(ROOT / "tests"), str(ROOT / "scripts")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

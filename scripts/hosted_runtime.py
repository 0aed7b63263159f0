"""Build a hosted notebook runtime's Python environment (Colab, Kaggle) and install nbtune into it as a user would.

    python scripts/hosted_runtime.py colab [--env DIR] [--report FILE]

1. A fresh virtual environment gets the runtime's packages from ``requirements/hosted/<name>.txt`` (what the
   runtime image has before the user's first cell).
2. nbtune is installed over it from this repository, not editable, with no constraints: what the tutorials'
   install cell does on Colab and Kaggle.
3. The report says which listed packages pip moved (none of the frontend packages may), what ``pip check``
   says, and where the kernel spec for notebooks lies (``<env>/share/jupyter``, for ``JUPYTER_PATH``).

The environment is reused while the package list and ``pyproject.toml`` stay the same (a stamp file), so the
test suite pays for the build once per change. Exit status 1 when a frontend package moved or pip reports a
conflict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTS = ROOT / "requirements" / "hosted"
# The packages a hosted runtime's notebook frontend and kernel are built from: moving any of them can break the
# runtime (google-colab pins ipython and ipykernel; its kernel class depends on IPython 7 internals).
FRONTEND = ("ipython", "ipykernel", "ipywidgets", "widgetsnbextension", "jupyterlab-widgets", "jupyter-client",
            "jupyter-core", "traitlets", "tornado", "pyzmq", "notebook")


def canonical(name: str) -> str:
    """A distribution name in PEP 503 normal form (``jupyter_client`` -> ``jupyter-client``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def listed(name: str) -> dict[str, str]:
    """The ``name==version`` pins of a runtime's package list."""
    pins = {}
    for line in (LISTS / f"{name}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            package, version = line.split("==")
            pins[canonical(package)] = version
    return pins


def installed(python: Path) -> dict[str, str]:
    """Every distribution in the environment of ``python`` and its version (local labels such as +cpu dropped)."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
                         text=True).stdout
    return {canonical(d["name"]): d["version"].split("+")[0] for d in json.loads(out)}


def _pip(python: Path, *args: str, log: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True)
    log.append(f"$ pip {' '.join(args)}\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    return proc


def _digest(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


def _stamp(name: str) -> str:
    """What the environment's packages depend on: the runtime's list and nbtune's declared dependencies (the
    [project] tables of pyproject.toml; tool settings do not count)."""
    project = re.search(r"^\[project\]$.*?(?=^\[(?!project)|\Z)", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    return hashlib.sha256((_digest([LISTS / f"{name}.txt", Path(__file__)]) + project.group(0)).encode()).hexdigest()


def _source_stamp() -> str:
    """nbtune's own files: when only they change, nbtune alone is reinstalled."""
    return _digest(sorted(p for p in (ROOT / "nbtune").rglob("*") if p.is_file() and "__pycache__" not in p.parts))


def _install_nbtune(python: Path, log: list[str], *extra: str) -> subprocess.CompletedProcess:
    # As a user would: from the repository, not editable, no constraints (the install cell's form, from a path).
    return _pip(python, "install", *extra, f"nbtune[models] @ {ROOT.as_uri()}", log=log)


def _write_kernelspec(env: Path, python: Path, name: str) -> Path:
    """A kernel spec for the environment's Python under ``<env>/share/jupyter`` (add it to ``JUPYTER_PATH``)."""
    spec = env / "share" / "jupyter" / "kernels" / f"nbtune-{name}"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({name} packages)", "language": "python"}))
    return spec.parent.parent


def build(name: str, env: Path | None = None) -> dict:
    """Build (or reuse) the runtime environment ``name``; return the report (see the module docstring)."""
    env = Path(env or ROOT / ".hosted" / name).resolve()
    python = env / "bin" / "python"
    stamp_file = env / ".nbtune-hosted.json"
    stamp = _stamp(name)
    log: list[str] = []
    if stamp_file.exists():
        report = json.loads(stamp_file.read_text())
        if report.get("stamp") == stamp and python.exists():
            if report.get("source_stamp") != _source_stamp():  # same dependencies, newer nbtune code
                if _install_nbtune(python, log, "--no-deps", "--force-reinstall").returncode:
                    raise RuntimeError("reinstalling nbtune failed:\n" + log[-1])
                report["source_stamp"] = _source_stamp()
                stamp_file.write_text(json.dumps(report, indent=1))
            return report | {"reused": True}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    _pip(python, "install", "-q", "--upgrade", "pip", log=log)
    runtime = _pip(python, "install", "-q", "-r", str(LISTS / f"{name}.txt"), log=log)
    if runtime.returncode:
        raise RuntimeError(f"the {name} package list does not install here:\n" + log[-1])
    image_seconds = time.monotonic() - started
    before = installed(python)
    started = time.monotonic()
    user = _install_nbtune(python, log)
    install_seconds = time.monotonic() - started
    after = installed(python)
    check = _pip(python, "check", log=log)
    pins = listed(name)
    moved = {p: [before.get(p), after.get(p)] for p in sorted(set(before) | set(after))
             if p in before and before.get(p) != after.get(p)}
    report = {
        "runtime": name, "stamp": stamp, "source_stamp": _source_stamp(), "python": sys.version.split()[0], "env": str(env),
        "jupyter_path": str(_write_kernelspec(env, python, name)), "kernel_name": f"nbtune-{name}",
        "install_ok": user.returncode == 0, "install_output": user.stdout[-3000:] + user.stderr[-3000:],
        "pip_check_ok": check.returncode == 0, "pip_check": (check.stdout + check.stderr).strip(),
        "frontend": {p: after.get(p) for p in FRONTEND},
        "frontend_moved": {p: v for p, v in moved.items() if p in FRONTEND},
        "listed_moved": {p: v for p, v in moved.items() if p in pins},
        "moved": moved, "added": sorted(set(after) - set(before)),
        "image_seconds": round(image_seconds, 1), "install_seconds": round(install_seconds, 1),
    }
    stamp_file.write_text(json.dumps(report, indent=1))
    return report | {"reused": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runtime", choices=sorted(p.stem for p in LISTS.glob("*.txt")))
    parser.add_argument("--env", type=Path, help="where to build it (default .hosted/<runtime>)")
    parser.add_argument("--report", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    report = build(args.runtime, args.env)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("runtime", "install_ok", "pip_check_ok", "frontend",
                                             "frontend_moved", "listed_moved", "image_seconds",
                                             "install_seconds")}, indent=1))
    return 0 if report["install_ok"] and report["pip_check_ok"] and not report["frontend_moved"] else 1


if __name__ == "__main__":
    sys.exit(main())

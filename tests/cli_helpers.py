"""The ``nbtune`` command in a subprocess, for the tests of recipe files and several processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cli(*args, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m nbtune ARGS``; with ``check``, a non-zero exit fails with the command's output."""
    proc = subprocess.run([sys.executable, "-m", "nbtune", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-2000:] + proc.stderr[-4000:])
    return proc


def run_on_one_and_two_processes(recipe: Path, out: Path) -> Path:
    """The recipe run by ``nbtune run`` into ``out/one`` and by ``nbtune launch --processes 2`` (gloo on the CPU)
    into ``out/two``."""
    cli("run", recipe, "--output", out / "one", "--quiet")
    cli("launch", recipe, "--processes", "2", "--output", out / "two")
    return out


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` that will run when it arrives: caught, and neither
    ignored nor blocked (a process started in the background by a shell inherits an ignored SIGINT)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    bit = 1 << (signum - 1)
    mask = {name: int(fields[name].strip(), 16) for name in ("SigCgt", "SigIgn", "SigBlk")}
    return bool(mask["SigCgt"] & bit) and not (mask["SigIgn"] | mask["SigBlk"]) & bit

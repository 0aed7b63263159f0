"""Run one benchmark case in a fresh Python process (so peak RSS and imports are its own) and read its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_isolated(script: str, name: str, env: dict[str, str] | None = None) -> dict:
    """``python script --only name`` offline; the last stdout line is the case's JSON. Exits with its stderr on
    failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.run([sys.executable, script, "--only", name], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cases(script: str, cases, run_case, result_name: str) -> None:
    """A benchmark's command line: ``--only NAME`` runs one case here and prints its JSON; without it every case runs
    in its own process and the results go to ``bench/results/RESULT_NAME``."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--only")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_case(args.only)))
        return
    results = [run_isolated(script, name) for name in cases]
    for r in results:
        print(r)
    (Path(script).resolve().parent / "results" / result_name).write_text(json.dumps(results, indent=1))

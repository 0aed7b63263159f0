"""The main job: run ``notebooks/quickstart.ipynb`` headless in a real kernel and save the results.

``python -m nbtune.quickstart`` (the README's first command does this in its own environment) writes the
executed notebook and an HTML copy to ``out/`` and prints where they are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default=str(ROOT / "notebooks" / "quickstart.ipynb"))
    parser.add_argument("--out", default=str(ROOT / "out"))
    parser.add_argument("--model", default=None, help="model folder or hub id (default: embedded all-MiniLM-L6-v2)")
    args = parser.parse_args(argv)

    from nbtune.notebooks import execute, outputs

    notebook = Path(args.notebook)
    if not notebook.exists():
        raise SystemExit(f"No notebook at {notebook}; pass --notebook PATH (it ships in the repository's notebooks/).")
    print(f"running {notebook} in a Jupyter kernel...", flush=True)
    started = time.perf_counter()
    params = {"MODEL": args.model} if args.model else {}
    nb, written, html = execute(notebook, args.out, parameters=params, cwd=notebook.parent)
    seconds = time.perf_counter() - started
    for out in outputs(nb, "stream"):
        text = out.get("text", "")
        if "accuracy before" in text:
            print(text.strip())
    print(f"done in {seconds:.0f}s")
    print(f"executed notebook: {written}")
    print(f"HTML copy:         {html}")


if __name__ == "__main__":
    main()

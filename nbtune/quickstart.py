"""The quickstart, headless: load the embedded default model, look at it, freeze all but the head.

Run with ``python -m nbtune.quickstart`` (the README's main-job command does this in its own environment).
"""

from __future__ import annotations

import argparse

import nbtune


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model folder or hub id (default: embedded all-MiniLM-L6-v2)")
    parser.add_argument("--num-labels", type=int, default=2)
    args = parser.parse_args(argv)

    source = args.model or nbtune.default_model_path()
    print(f"nbtune {nbtune.__version__}: loading {source}")
    s = nbtune.load(source, task="text-classification", num_labels=args.num_labels)

    print("\n== Layer tree ==")
    print(s.layers())
    print("\n== Summary: everything trainable ==")
    print(s.summary(batch_size=32, seq_len=128))

    print("\n== Freeze everything but the head ==")
    print(s.freeze("all"))
    print(s.unfreeze("head"))
    print("\n== Summary: head only ==")
    print(s.summary(batch_size=32, seq_len=128))


if __name__ == "__main__":
    main()

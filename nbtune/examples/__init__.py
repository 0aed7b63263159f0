"""Small datasets that ship with nbtune, for the quickstart and tutorials.

``reviews.csv`` holds 262 short review sentences (131 positive, 131 negative) about films, food, hotels,
gadgets and services, written for this project (not copied from any dataset), licensed with nbtune.

The offline stand-ins for the tutorials' public datasets (``public.py``) are written or generated for this
project too: ``wnut17_sample.conll`` (40 tweet-like sentences, WNUT-17's tags), ``scitldr_sample.jsonl`` (16
short abstracts with one-line summaries), ``gsm8k_sample.jsonl`` (48 template word problems with worked answers
in GSM8K's format); the sentiment stand-in is ``reviews.csv``.
"""

from __future__ import annotations

from pathlib import Path

from .public import load_public  # noqa: F401  (nbtune.examples.load_public: the tutorials' data)

HERE = Path(__file__).resolve().parent


def reviews(split: bool = True, eval_fraction: float = 0.25, seed: int = 0):
    """The review sentences as a DataFrame (``text``, ``label``), or ``(train, eval)`` shuffled and stratified."""
    import pandas as pd

    table = pd.read_csv(HERE / "reviews.csv")
    if not split:
        return table
    shuffled = table.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    held_index = []
    for label in sorted(shuffled["label"].unique()):  # the same share of every label in the held-out part
        rows = shuffled.index[shuffled["label"] == label]
        held_index.extend(rows[: int(len(rows) * eval_fraction)])
    held = shuffled.loc[sorted(held_index)]
    train = shuffled.drop(held.index)
    return train.reset_index(drop=True), held.reset_index(drop=True)


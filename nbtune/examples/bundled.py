"""The data files that ship in this folder, read without any other part of nbtune."""

from __future__ import annotations

from pathlib import Path

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


"""Data for training tests, shared by the test files (and the kernels some of them start)."""

from __future__ import annotations

import random

POS = ["good", "great", "wonderful", "moving", "funny", "brilliant"]
NEG = ["bad", "awful", "boring", "dull", "weak", "painful"]
FILL = ["the film was", "this movie is", "a story that felt", "honestly", "the acting seemed", "overall"]


def toy_rows(n: int = 96, seed: int = 0) -> list[dict]:
    """A learnable sentiment set: the label is whether the sentence has a positive word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POS if label else NEG)
        rows.append({"sentence": f"{rng.choice(FILL)} {word}", "label": label})
    return rows

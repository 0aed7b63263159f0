"""Pair classification with nbtune's defaults: a paraphrase task of our own, shaped like MRPC, from public data.

MRPC (two news sentences: the same meaning or not; 68% positive; negatives share many words) is not in
``../shared``. SciTLDR's dev and test sets give several one-sentence summaries (TLDRs) of each paper, written by
its authors and from its peer reviews: two TLDRs of one paper are paraphrases of a kind; a TLDR paired with the
most similar TLDR of another paper (TF-IDF cosine, so they share vocabulary) is a hard negative. Two positives
for every negative, as MRPC has. Papers are split between train and test, so no summary is seen in both.

Like the case the issue reports: all-MiniLM-L6-v2, the training split less 400 rows for evaluation, 3 epochs;
the default settings, then one change at a time (the ablation), each in its own process and over three seeds.

    python bench/pair_tldr.py            # every case, results in bench/results/pair_tldr.json
    python bench/pair_tldr.py --only default
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data" / "scitldr"
SEEDS = (1, 2, 3)

# the ablation: the defaults, then one setting changed at a time (an empty dict: nbtune's defaults)
CASES: dict[str, dict] = {
    "default": {},
    "lr 1e-4": {"lr": 1e-4},
    "lr 2e-4": {"lr": 2e-4},
    "warmup 0.1": {"warmup": 0.1},
    "batch 32": {"batch_size": 32},
    "max_length 128": {"max_length": 128},
    "lr 1e-4, warmup 0.1": {"lr": 1e-4, "warmup": 0.1},
}


def pairs(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test) rows of sentence1, sentence2, label (1: two summaries of one paper)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    papers = []
    for split in ("dev", "test"):
        for line in (DATA / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            targets = list(dict.fromkeys(t.strip() for t in row["target"] if len(t.split()) >= 5))
            if len(targets) >= 2:
                papers.append(targets)
    rng = random.Random(seed)
    rng.shuffle(papers)
    texts = [t for p in papers for t in p]
    owner = [i for i, p in enumerate(papers) for _ in p]
    similarity = cosine_similarity(TfidfVectorizer(stop_words="english").fit_transform(texts))
    rows_by_paper: list[list[dict]] = []
    start = 0
    for i, targets in enumerate(papers):
        positives = [(a, b) for j, a in enumerate(targets) for b in targets[j + 1:]]
        rng.shuffle(positives)
        rows = [{"sentence1": a, "sentence2": b, "label": 1} for a, b in positives[:2]]
        k = start + rng.randrange(len(targets))  # one of this paper's summaries, against its nearest stranger
        order = similarity[k].argsort()[::-1]
        other = next(j for j in order if owner[j] != i)
        rows.append({"sentence1": texts[k], "sentence2": texts[other], "label": 0})
        for row in rows:
            if rng.random() < 0.5:
                row["sentence1"], row["sentence2"] = row["sentence2"], row["sentence1"]
        rows_by_paper.append(rows)
        start += len(targets)
    cut = int(len(rows_by_paper) * 0.7)
    train = [r for rows in rows_by_paper[:cut] for r in rows]
    test = [r for rows in rows_by_paper[cut:] for r in rows]
    rng.shuffle(train)
    return train, test


def run_case(name: str) -> dict:
    import pandas as pd
    import torch

    import nbtune

    torch.set_num_threads(2)
    train, test = pairs()
    train, dev = pd.DataFrame(train[400:]), pd.DataFrame(train[:400])
    test = pd.DataFrame(test)
    scores = []
    started = time.perf_counter()
    for seed in SEEDS:
        torch.manual_seed(seed)
        s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
        s.train(train, eval=dev, epochs=3, seed=seed, log=False, save_run=False, **CASES[name])
        scores.append(s.evaluate(test))
    accuracy = [m["accuracy"] for m in scores]
    f1 = [m["macro_f1"] for m in scores]
    return {"case": name, "settings": CASES[name], "train": len(train), "eval": len(dev), "test": len(test),
            "majority": float(max(test["label"].mean(), 1 - test["label"].mean())),
            "accuracy": round(statistics.mean(accuracy), 4), "accuracy_sd": round(statistics.stdev(accuracy), 4),
            "macro_f1": round(statistics.mean(f1), 4), "per_seed": [round(a, 4) for a in accuracy],
            "seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    from isolated import run_cases

    run_cases(__file__, CASES, run_case, "pair_tldr.json")

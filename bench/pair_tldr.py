"""Pair classification with nbtune's defaults: a paraphrase task of our own, shaped like MRPC, from public data.

MRPC (two news sentences: the same meaning or not; 68% positive; negatives share many words) is not in
``../shared``. SciTLDR gives, for each paper, its one-sentence summary (TLDR) and the abstract's sentences with the
one that best matches the summary marked (``source_labels``). A pair is the TLDR and a sentence: that marked
sentence of its own abstract (label 1: they say the same thing), or the marked sentence of the paper whose marked
sentence is nearest to its own by TF-IDF cosine (label 0: shared vocabulary, another claim). Two positives for each
negative, as in MRPC; training pairs from SciTLDR's train split, test pairs from its dev and test splits (other
papers). The embedded model's zero-shot cosine with the best threshold on the training pairs scores 0.837 on test
(majority 0.660), so the task has signal a fine-tuned model should improve on.

Like the case the issue reports: all-MiniLM-L6-v2, the training pairs less 400 for evaluation, 3 epochs; nbtune's
defaults, then one change at a time (the ablation), each in its own process and over three seeds.

    python bench/pair_tldr.py            # every case, results in bench/results/pair_tldr_cpu_2core.json
    python bench/pair_tldr.py --only default
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data" / "scitldr"
SEEDS = tuple(int(x) for x in os.environ.get("PAIR_SEEDS", "1,2,3").split(","))  # fewer to explore

# the ablation: the defaults, then one setting changed at a time (an empty dict: nbtune's defaults)
CASES: dict[str, dict] = {
    "default": {},
    "lr 1e-4": {"lr": 1e-4},
    "lr 2e-4": {"lr": 2e-4},
    "warmup 0.1": {"warmup": 0.1},
    "batch 32": {"batch_size": 32},
    "max_length 128": {"max_length": 128},
    "lr 1e-4, warmup 0.1": {"lr": 1e-4, "warmup": 0.1},
    "head_lr 1e-3": {"head_lr": 1e-3},
    "head_lr 5e-4": {"head_lr": 5e-4},
    "head_lr 1e-3, warmup 0.1": {"head_lr": 1e-3, "warmup": 0.1},
}


def _pairs(split: str, seed: int) -> list[dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    papers = [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text().splitlines()]
    summaries = [p["target"][0] for p in papers]
    marked = [next((s for s, label in zip(p["source"], p["source_labels"]) if label), p["source"][0]) for p in papers]
    similarity = cosine_similarity(TfidfVectorizer(stop_words="english").fit_transform(marked))
    rng = random.Random(seed)
    rows = []
    for i, summary in enumerate(summaries):
        if rng.random() < 2 / 3:
            rows.append({"sentence1": summary, "sentence2": marked[i], "label": 1})
        else:
            nearest = next(j for j in similarity[i].argsort()[::-1] if j != i)
            rows.append({"sentence1": summary, "sentence2": marked[nearest], "label": 0})
    return rows


def pairs(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test) rows of sentence1 (a TLDR), sentence2 (an abstract's sentence), label."""
    train = _pairs("train", seed)
    random.Random(seed).shuffle(train)
    return train, _pairs("dev", seed) + _pairs("test", seed)


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
            "accuracy": round(statistics.mean(accuracy), 4), "accuracy_sd": round(statistics.stdev(accuracy), 4) if len(accuracy) > 1 else 0.0,
            "macro_f1": round(statistics.mean(f1), 4), "per_seed": [round(a, 4) for a in accuracy],
            "seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    from isolated import run_cases

    run_cases(__file__, CASES, run_case, "pair_tldr_cpu_2core.json")

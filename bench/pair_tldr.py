"""Pair classification with nbtune's defaults: a paraphrase task of our own, shaped like MRPC, from public data.

MRPC (two news sentences: the same meaning or not; 68% positive; negatives are about the same event) is not in
``../shared``. SciTLDR gives, for each paper, its one-sentence summary (TLDR) and the abstract's sentences with the
one that best matches the summary marked (``source_labels``). A pair is the TLDR and a sentence of its own abstract:
the marked one (label 1: they say the same thing) or another one of the same abstract (label 0: the same paper and
vocabulary, another claim). Two positives for each negative, as in MRPC; training pairs from SciTLDR's train split,
test pairs from its dev and test splits (other papers).

Measured (2 CPU cores; 1,581 training pairs, 400 for evaluation, 1,231 test pairs, majority 0.651): the embedded
model's zero-shot cosine (threshold chosen on the training pairs) 0.721; nbtune's defaults 0.766 +- 0.008 accuracy
over three seeds (macro-F1 0.736; bench/results/pair_tldr_cpu_2core.json), which is where the issue's MRPC case
stands (0.769 / 0.721). No single change moves it beyond the seeds' spread (three seeds each, an earlier sitting):
lr 1e-4 0.768 +- 0.023, the top block re-initialised 0.773 +- 0.005, lr 1e-4 with layer_decay 0.8 0.765 +- 0.009; in
one-seed runs mean pooling 0.776, an identity pooler 0.776, batch 8 0.771, and lr 2e-4 collapses to the majority
class while warm-up 0.1 lowers every rate tried. The runs end with a training loss near 0.4, but they do not
underfit: 10 epochs (seed 1) bring the training loss to 0.03 and the test accuracy to 0.760 (3 epochs, same seed:
0.759); what limits the defaults is generalisation, not fit. Encoding the two sentences apart does worse: a
sentence-transformers ``SoftmaxLoss`` classifier on (u, v, |u - v|) from the same model, 3 epochs, batch 16, reached
0.690 (seed 1, sentence-transformers' own ``fit``), so the cross-encoding head stays. An earlier version drew negatives from the nearest other paper; there zero-shot cosine
already scored 0.837 and every setting landed within 0.01 of it, so it could not show what the defaults get wrong.

Like the case the issue reports: all-MiniLM-L6-v2, the training pairs less 400 for evaluation, 3 epochs; nbtune's
defaults, then one change at a time (the ablation), each in its own process and over ``PAIR_SEEDS`` (default three).
The ``pooling`` cases change the head's input after loading, to test whether the classifier reading [CLS] through
the checkpoint's untrained pooler (bias 0; sentence-transformers never trains it) holds the level down.

    python bench/pair_tldr.py            # every case, results in bench/results/pair_tldr_cpu_2core.json
    PAIR_SEEDS=1 python bench/pair_tldr.py --only default
    PAIR_CASES="zero-shot cosine,default" python bench/pair_tldr.py   # a subset, its results written
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

# the ablation: the defaults, then one setting changed at a time (an empty dict: nbtune's defaults). "pooling" is
# not a train() setting: run_case changes the loaded model's head input for it.
CASES: dict[str, dict] = {
    "zero-shot cosine": {"zero_shot": True},
    "default": {},
    "lr 3e-5": {"lr": 3e-5},
    "lr 1e-4": {"lr": 1e-4},
    "lr 2e-4": {"lr": 2e-4},
    "warmup 0.1": {"warmup": 0.1},
    "lr 1e-4, warmup 0.1": {"lr": 1e-4, "warmup": 0.1},
    "lr 2e-4, warmup 0.1": {"lr": 2e-4, "warmup": 0.1},
    "batch 8": {"batch_size": 8},
    "head_lr 1e-3": {"head_lr": 1e-3},
    "lr 1e-4, layer_decay 0.8": {"lr": 1e-4, "layer_decay": 0.8},
    "pooling mean": {"pooling": "mean"},
    "pooling identity": {"pooling": "identity"},
    "pooling re-initialised": {"pooling": "reinit"},
    "top layer re-initialised": {"pooling": "reinit_top"},
    "epochs 10": {"epochs": 10},  # underfitting? (the 3-epoch runs end with a training loss near 0.4)
}


# PAIR_CASES="default,lr 1e-4": run (and write results for) only these cases, when the whole ablation (15 cases x
# 3 seeds, about 5 hours on 2 cores) does not fit the time there is
if os.environ.get("PAIR_CASES"):
    CASES = {name: CASES[name] for name in os.environ["PAIR_CASES"].split(",")}


def _pairs(split: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for line in (DATA / f"{split}.jsonl").read_text().splitlines():
        paper = json.loads(line)
        sentences, marks = paper["source"], paper["source_labels"]
        if 1 not in marks or len(sentences) < 3 or not sentences[marks.index(1)].strip():
            continue
        marked = marks.index(1)
        if rng.random() < 2 / 3:
            rows.append({"sentence1": paper["target"][0], "sentence2": sentences[marked], "label": 1})
        else:
            other = rng.choice([i for i, s in enumerate(sentences) if i != marked and s.strip()])
            rows.append({"sentence1": paper["target"][0], "sentence2": sentences[other], "label": 0})
    return rows


def pairs(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test) rows of sentence1 (a TLDR), sentence2 (a sentence of its abstract), label."""
    train = _pairs("train", seed)
    random.Random(seed).shuffle(train)
    return train, _pairs("dev", seed) + _pairs("test", seed)


def zero_shot(train, test) -> float:
    """Test accuracy of the embedded model's cosine similarity, thresholded where it is best on the training pairs."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    import nbtune

    model = SentenceTransformer(str(nbtune.default_model_path()), device="cpu")

    def cosines(rows):
        a, b = (model.encode([r[k] for r in rows], normalize_embeddings=True) for k in ("sentence1", "sentence2"))
        return (a * b).sum(1), np.array([r["label"] for r in rows])

    c, y = cosines(train)
    threshold = max(np.unique(c.round(3)), key=lambda t: ((c >= t) == y).mean())
    c, y = cosines(test)
    return float(((c >= threshold) == y).mean())


def change_head_input(model, how: str) -> None:
    """The pooling cases: what the classifier reads instead of [CLS] through the checkpoint's untrained pooler."""
    import torch

    bert = model.bert

    def draw_afresh(module):  # BERT's init; transformers' own _init_weights skips modules it marked initialised
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear):
                torch.nn.init.normal_(sub.weight, std=model.config.initializer_range)
                torch.nn.init.zeros_(sub.bias)
            elif isinstance(sub, torch.nn.LayerNorm):
                torch.nn.init.ones_(sub.weight)
                torch.nn.init.zeros_(sub.bias)

    if how == "reinit":  # the pooler drawn afresh at the model's init scale (std 0.02 instead of the checkpoint's 0.009)
        draw_afresh(bert.pooler)
    elif how == "identity":  # tanh([CLS]): no projection
        with torch.no_grad():
            bert.pooler.dense.weight.copy_(torch.eye(bert.pooler.dense.in_features))
            bert.pooler.dense.bias.zero_()
    elif how == "reinit_top":  # the last block drawn afresh: its features serve mean pooling, not a pair classifier
        draw_afresh(bert.encoder.layer[-1])
    elif how == "mean":  # the masked mean of the last hidden states, as sentence-transformers pools this model
        mask = {}
        model.register_forward_pre_hook(lambda _m, _a, kw: mask.update(m=kw.get("attention_mask")), with_kwargs=True)

        class MeanPooling(torch.nn.Module):
            def forward(self, hidden):
                m = mask["m"].unsqueeze(-1).to(hidden.dtype)
                return (hidden * m).sum(1) / m.sum(1).clamp(min=1)

        bert.pooler = MeanPooling()


def run_case(name: str) -> dict:
    import pandas as pd
    import torch

    import nbtune

    torch.set_num_threads(2)
    train, test = pairs()
    settings = dict(CASES[name])
    majority = max(statistics.mean(r["label"] for r in test), 1 - statistics.mean(r["label"] for r in test))
    common = {"case": name, "train": len(train) - 400, "eval": 400, "test": len(test), "majority": round(majority, 4)}
    if settings.pop("zero_shot", False):
        return {**common, "accuracy": round(zero_shot(train[400:], test), 4)}
    how = settings.pop("pooling", None)
    train, dev = pd.DataFrame(train[400:]), pd.DataFrame(train[:400])
    test = pd.DataFrame(test)
    scores, final_losses = [], []
    started = time.perf_counter()
    for seed in SEEDS:
        torch.manual_seed(seed)
        s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
        if how:
            change_head_input(s.model, how)
        result = s.train(train, eval=dev, seed=seed, log=False, save_run=False, **{"epochs": 3, **settings})
        final_losses.append(statistics.mean(result.losses[-50:]))
        scores.append(s.evaluate(test))
    accuracy = [m["accuracy"] for m in scores]
    f1 = [m["macro_f1"] for m in scores]
    return {**common, "settings": CASES[name],
            "accuracy": round(statistics.mean(accuracy), 4),
            "accuracy_sd": round(statistics.stdev(accuracy), 4) if len(accuracy) > 1 else None,
            "macro_f1": round(statistics.mean(f1), 4), "per_seed": [round(a, 4) for a in accuracy],
            "train_loss_last_50_steps": round(statistics.mean(final_losses), 4),
            "seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    from isolated import run_cases

    run_cases(__file__, CASES, run_case, "pair_tldr_cpu_2core.json")

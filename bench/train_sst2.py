"""Benchmark: nbtune's training loop against a hand-written PyTorch loop with dynamic padding.

Same data (the first 4,000 sentences of ../shared/data/sst2/train.tsv), same model (all-MiniLM-L6-v2),
1 epoch, batch 32: full fine-tuning at lr 5e-5, then LoRA r=8 on query/value at lr 5e-4. Each loop runs
in its own process, one after the other, so peak RSS is per loop. Prints examples/s (training, tokenization
included), peak RSS and SST-2 dev accuracy.

    python bench/train_sst2.py            # all four runs, then the comparison table
    python bench/train_sst2.py --only nbtune-full   # one run, JSON on stdout
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import time
from pathlib import Path

from isolated import run_isolated

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
# "-ungrouped": nbtune with group_by_length=False, i.e. the very batches of the hand loop (same shuffle).
RUNS = ("hand-full", "nbtune-full", "nbtune-full-ungrouped", "hand-lora", "nbtune-lora", "nbtune-lora-ungrouped")
N_TRAIN, BATCH, MAX_LEN, SEED = 4000, 32, 256, 42


def read(split: str, n: int | None = None) -> tuple[list[str], list[int]]:
    with open(DATA / f"{split}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hand_loop(lora: bool) -> dict:
    """The loop people write by hand: tokenize, shuffle, pad each batch to its longest, AdamW, linear decay.
    With LoRA it trains the same parameters as nbtune: adapters plus the classifier and the pooler that feeds it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, get_scheduler

    import nbtune

    torch.manual_seed(SEED)
    path = nbtune.default_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    lr = 5e-4 if lora else 5e-5
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "value"],
                                                 task_type="SEQ_CLS", modules_to_save=["classifier", "pooler"]))
    texts, labels = read("train", N_TRAIN)
    t0 = time.perf_counter()
    enc = tok(texts, truncation=True, max_length=MAX_LEN)
    features = [{"input_ids": i, "attention_mask": a, "labels": y}
                for i, a, y in zip(enc["input_ids"], enc["attention_mask"], labels)]
    loader = torch.utils.data.DataLoader(features, batch_size=BATCH, shuffle=True, collate_fn=DataCollatorWithPadding(tok),
                                         generator=torch.Generator().manual_seed(SEED))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=len(loader))
    model.train()
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    model.eval()
    dev_texts, dev_labels = read("dev")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(dev_texts), 64):
            batch = tok(dev_texts[i:i + 64], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
            correct += (model(**batch).logits.argmax(-1) == torch.tensor(dev_labels[i:i + 64])).sum().item()
    return {"seconds": seconds, "examples_per_s": N_TRAIN / seconds, "dev_accuracy": correct / len(dev_texts)}


def nbtune_loop(lora: bool, grouped: bool = True) -> dict:
    import pandas as pd
    import torch

    import nbtune

    torch.manual_seed(SEED)
    s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
    if lora:
        s.add_lora(r=8, alpha=16, dropout=0.05, targets=["query", "value"])
    texts, labels = read("train", N_TRAIN)
    train = pd.DataFrame({"sentence": texts, "label": labels})
    t0 = time.perf_counter()
    s.train(train, epochs=1, lr=5e-4 if lora else 5e-5, batch_size=BATCH, max_length=MAX_LEN, seed=SEED,
            group_by_length=grouped, log=False)
    seconds = time.perf_counter() - t0
    dev = s.evaluate(DATA / "dev.tsv", batch_size=64)
    return {"seconds": seconds, "examples_per_s": N_TRAIN / seconds, "dev_accuracy": dev["accuracy"]}


def run_one(name: str) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("NBTUNE_BENCH_THREADS", os.cpu_count() or 1)))
    kind, method, *variant = name.split("-")
    if kind == "hand":
        result = hand_loop(lora=method == "lora")
    else:
        result = nbtune_loop(lora=method == "lora", grouped=not variant)
    result.update(run=name, peak_rss_mb=peak_rss_mb(), threads=torch.get_num_threads())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=RUNS)
    parser.add_argument("--out", help="write all results as JSON here")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="a subset of the runs")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only)))
        return
    results = json.loads(Path(args.out).read_text()) if args.out and Path(args.out).exists() else {}
    for name in args.runs:
        r = results[name] = run_isolated(__file__, name)
        print(f"{name:22s} {r['examples_per_s']:7.1f} ex/s  peak RSS {r['peak_rss_mb']:7.0f} MB  "
              f"dev acc {r['dev_accuracy']:.4f}  ({r['seconds']:.0f}s)", flush=True)
    for method in ("full", "lora"):
        h = results[f"hand-{method}"]
        for variant in ("", "-ungrouped"):
            n = results[f"nbtune-{method}{variant}"]
            print(f"{method}{variant or ' (default, length-grouped)'}: nbtune/hand throughput "
                  f"{n['examples_per_s'] / h['examples_per_s']:.3f} (target >= 0.97), dev accuracy difference "
                  f"{n['dev_accuracy'] - h['dev_accuracy']:+.4f} (target within 0.01)")
    print(f"LoRA peak RSS {results['nbtune-lora']['peak_rss_mb']:.0f} MB vs full {results['nbtune-full']['peak_rss_mb']:.0f} MB "
          "(target: LoRA below full)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

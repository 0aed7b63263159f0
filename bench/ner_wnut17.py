"""Benchmark: entity recognition on WNUT-17 with all-MiniLM-L6-v2 on the CPU (budget: 5 minutes).

Trains on ../shared/data/wnut17/wnut17train.conll, evaluates entity-level F1 (seqeval) on the annotated test
set, and compares with the all-'O' baseline (F1 0).

    python bench/ner_wnut17.py [--epochs 3] [--lr 1e-4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import nbtune
from nbtune.core.data.features import read_conll

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wnut17"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    s = nbtune.load(nbtune.default_model_path(), task="token-classification")
    train = read_conll(DATA / "wnut17train.conll")
    test = read_conll(DATA / "emerging.test.annotated")
    started = time.perf_counter()
    run = s.train(train, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, log=False)
    seconds = time.perf_counter() - started
    metrics = s.evaluate(test, batch_size=64)
    result = {"train_sentences": len(train), "test_sentences": len(test), "tags": s.model.config.num_labels,
              "train_seconds": round(seconds, 1), "examples_per_s": round(run.examples_per_s, 1),
              **{k: round(v, 4) for k, v in metrics.items()}, "all_O_baseline_f1": 0.0}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Digest of the weights three short SST-2 runs end with, to check that a refactoring changes no result: run it
with the code before and after (``PYTHONPATH=/path/to/old/checkout python bench/weights_digest.py``, then without)
and compare the lines. MiniLM on the first 256 sentences of ../shared/data/sst2/train.tsv, one epoch, batch 16,
seed 7: full fine-tuning, LoRA r=4, and head only."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pandas as pd

import nbtune

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"
SET_UPS = {
    "full": lambda s: None,
    "lora": lambda s: s.add_lora(r=4),
    "head": lambda s: (s.freeze("all"), s.unfreeze("head")),
}


def main() -> None:
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:256]
    data = pd.DataFrame({"sentence": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]})
    out = {"nbtune": nbtune.__file__}
    for name, set_up in SET_UPS.items():
        s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
        set_up(s)
        run = s.train(data, epochs=1, batch_size=16, seed=7, log=False, save_run=False, progress="none")
        digest = hashlib.sha256()
        for pname, p in sorted(s.model.named_parameters()):
            digest.update(pname.encode())
            digest.update(p.detach().float().numpy().tobytes())
        out[name] = {"sha256": digest.hexdigest()[:16], "last_loss": round(run.history.losses()[-1], 6)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

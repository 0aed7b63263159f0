"""nbtune's memory estimate (``Session.summary``) against ``torch.cuda.max_memory_allocated`` on a real GPU.

For all-MiniLM-L6-v2 (classification) and SmolLM2-135M (causal LM), full fine-tuning and LoRA, at two batch sizes
and sequence lengths: every batch padded to exactly ``seq_len`` so the estimate and the run see the same shapes.
One precision per process (accelerate fixes it per process).

    python bench/gpu_memory.py --precision auto --out results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CONFIGS = [  # model, method, batch, seq_len
    ("minilm", "full", 32, 128), ("minilm", "full", 128, 512), ("minilm", "lora", 32, 128), ("minilm", "lora", 128, 512),
    ("smollm2", "full", 4, 512), ("smollm2", "full", 16, 1024), ("smollm2", "lora", 4, 512), ("smollm2", "lora", 16, 1024),
]
MB = 2**20


def measure(model: str, method: str, batch: int, seq_len: int, precision: str, cache: Path) -> dict:
    import torch

    import nbtune

    from gpu_helpers import gsm8k, minilm_path, smollm2_path, sst2

    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    if model == "minilm":
        s = nbtune.load(minilm_path(), task="text-classification", labels=["negative", "positive"])
        data = sst2("train", 2 * batch)
    else:
        s = nbtune.load(smollm2_path(cache), task="causal-lm")
        data = gsm8k("train", 2 * batch)
    s.model.to("cuda")
    if method == "lora":
        s.add_lora(r=8, targets="qkv")
    estimate = s.summary(batch_size=batch, seq_len=seq_len, precision=precision).memory
    weights = torch.cuda.memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    run = s.train(data, batch_size=batch, max_steps=2, pad_to=seq_len, max_length=seq_len, group_by_length=False,
                  precision=precision, lr=1e-5, log=False)
    peak = torch.cuda.max_memory_allocated() - base
    steady = torch.cuda.memory_allocated() - base
    out = {
        "model": model, "method": method, "batch": batch, "seq_len": seq_len, "precision": precision,
        "reason": run.reason, "measured_peak_mb": peak / MB, "measured_weights_mb": weights / MB,
        "measured_after_mb": steady / MB,
        "estimate_mb": estimate.total / MB, "estimate_parts_mb": {
            "weights": estimate.weights / MB, "gradients": estimate.gradients / MB,
            "optimizer": estimate.optimizer / MB, "activations": (estimate.activations or 0) / MB},
        "ratio": estimate.total / peak,
    }
    del s, run
    gc.collect()
    torch.cuda.empty_cache()
    out["left_after_release_mb"] = (torch.cuda.memory_allocated() - base) / MB  # > 0 would be a leak
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for config in CONFIGS:
            try:
                rows.append(measure(*config, args.precision, Path(cache)))
            except Exception as exc:  # report and go on: one failure must not cost the other measurements
                rows.append({"config": config, "error": f"{type(exc).__name__}: {exc}"})
            print(json.dumps(rows[-1]), flush=True)
            Path(args.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

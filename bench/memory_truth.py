"""Does the memory estimate tell the truth? Estimated peak of each phase (``Session.summary``: training, and
evaluation at its batch) against the peak RSS measured on this CPU, for an LLM (SmolLM2-135M, 4-bit, LoRA, chat
SFT, batch 1 x 256; evaluation at the language-model default of 32 x 256) and an encoder (all-MiniLM-L6-v2, full
fine-tuning for classification, batch 32 x 128; evaluation at 64 x 128). Each case runs in its own process; the
texts are long enough that every batch reaches the length estimated for (padding is dynamic).

Measured = the phase's peak RSS above the loaded model (VmHWM, reset after loading through /proc/self/clear_refs,
minus VmRSS then) plus the weights: what the run adds to a loaded session, which is what the fit verdict compares
with the memory available after loading. Target: within +-25% of the estimate. Also reported, as the issue first
measured it: the process's whole peak over its RSS before loading, which adds what loading leaves resident (for the
4-bit load, pages of the float32 checkpoint still mapped and freed quantization buffers).

    .venv/bin/python bench/memory_truth.py       # writes bench/results/memory_truth_cpu_2core.json
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import run_cases  # noqa: E402
from llm_sft import _folder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = ("llm_4bit_train", "llm_4bit_eval", "encoder_train", "encoder_eval")
SHAPES = {"llm": (1, 256, 32), "encoder": (32, 128, 64)}  # batch, length, evaluation batch


def _status(key: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS: now; VmHWM: the peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _llm_rows(n: int) -> list[dict]:
    with open(DATA / "gsm8k" / "train.jsonl") as f:
        rows = [json.loads(line) for line in list(f)[: n + 3]]
    # three worked answers in one response: longer than 256 tokens, so every example is cut at max_length
    return [{"prompt": rows[i]["question"], "response": " ".join(r["answer"] for r in rows[i:i + 3])}
            for i in range(n)]


def _encoder_rows(n: int) -> list[dict]:
    with open(DATA / "scitldr" / "train.jsonl") as f:
        rows = [json.loads(line) for line in list(f)[:n]]
    return [{"text": " ".join(r["source"]), "label": i % 2} for i, r in enumerate(rows)]


def run_case(name: str) -> dict:
    import torch

    import nbtune

    torch.manual_seed(0)
    kind, phase = name.rsplit("_", 1)
    model = kind.split("_")[0]
    batch, length, eval_batch = SHAPES[model]
    rows = _llm_rows(64) if model == "llm" else _encoder_rows(128)
    gc.collect()
    before = _status("VmRSS")
    if model == "llm":
        s = nbtune.load(_folder(), task="causal-lm", quantize="4bit")
        s.add_lora(r=16)
    else:
        s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
    estimate = s.summary(batch_size=batch, seq_len=length, eval_batch_size=eval_batch).memory
    gc.collect()
    loaded = _status("VmRSS") - before
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: loading's peak is not the phase's
    if phase == "train":
        s.train(rows, max_steps=4, batch_size=batch, max_length=length, log=False, save_run=False)
    else:
        s.evaluate(rows, batch_size=eval_batch, max_length=length)
    peak = _status("VmHWM")
    measured = peak - (before + loaded) + estimate.weights
    expected = estimate.phases["training" if phase == "train" else "evaluation"]
    return {"case": name, "batch": batch if phase == "train" else eval_batch, "length": length,
            "estimate_mib": round(expected / 2**20), "measured_mib": round(measured / 2**20),
            "ratio": round(measured / expected, 3), "weights_mib": round(estimate.weights / 2**20),
            "loaded_rss_mib": round(loaded / 2**20), "process_peak_over_start_mib": round((peak - before) / 2**20),
            "estimate_run_peak_mib": round(estimate.total / 2**20), "peak_phase": estimate.peak_phase}


if __name__ == "__main__":
    run_cases(__file__, CASES, run_case, "memory_truth_cpu_2core.json")

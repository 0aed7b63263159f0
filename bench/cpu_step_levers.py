"""Benchmark: what one bf16 MiniLM training step costs on this CPU, part by part, and what each lever saves.

The step is the SST-2 one of bench/speed.py (all-MiniLM-L6-v2, batch 32, bf16 autocast, fused AdamW, clipping at
1): ``STEPS`` real length-grouped batches of the first 4,000 training sentences, the same batches in every case, each
case in its own process. A case reports its median step time after ``WARMUP`` steps and the seconds before its first
step finished (compilation, for ``compiled``):

- ``eager``: the step as nbtune and the Trainer run it;
- ``frozen-embeddings``: the embedding layers frozen (half of MiniLM's 22.7M parameters: no gradient, no clipping
  and no AdamW update for the 30,522 x 384 token matrix);
- ``compiled``: ``torch.compile(model, dynamic=True)``, the one setting that does not recompile for every new
  batch length under length grouping;
- ``one-thread``: ``torch.set_num_threads(1)``.

``profile`` runs the eager step under torch's profiler and reports the share of its self time per kind of operator
(matmuls, dropout's random masks, AdamW, dtype casts, zero fills, clipping's norms).

    python bench/cpu_step_levers.py     # every case; table + bench/results/cpu_step_levers_cpu_2core.json
    python bench/cpu_step_levers.py --only compiled
"""

from __future__ import annotations

import statistics
import time

from isolated import run_cases
from speed import SEED, SST2_BATCH, SST2_LR, SST2_TRAIN, load_peer_model, sst2

STEPS, WARMUP = 40, 8
CASES = ("eager", "frozen-embeddings", "compiled", "one-thread", "profile")
# profiler operator names -> the kind of work they are
KINDS = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm"), "dropout masks": ("aten::bernoulli_",),
         "AdamW": ("aten::_fused_adamw_",), "dtype casts": ("aten::copy_",), "zero fills": ("aten::fill_",),
         "clipping norms": ("aten::linalg_vector_norm",)}


def batches(tok) -> list[dict]:
    """``STEPS`` length-grouped batches (nbtune's sampler over the bench's sentences), padded to their longest."""
    import torch

    from nbtune.core.data.batching import LengthGroupedBatches

    texts, labels = sst2("train", SST2_TRAIN)
    enc = tok(texts, truncation=True, max_length=256)
    sampler = LengthGroupedBatches([len(ids) for ids in enc["input_ids"]], SST2_BATCH, SEED)
    out = []
    for rows in sampler.batches()[:STEPS]:
        padded = tok.pad({"input_ids": [enc["input_ids"][i] for i in rows]}, return_tensors="pt")
        padded["labels"] = torch.tensor([labels[i] for i in rows])
        out.append(dict(padded))
    return out


def run_case(case: str) -> dict:
    import torch

    if case == "one-thread":
        torch.set_num_threads(1)
    tok, model = load_peer_model("sst2")
    if case == "frozen-embeddings":
        model.bert.embeddings.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=SST2_LR, weight_decay=0.01, fused=True)
    forward = torch.compile(model, dynamic=True) if case == "compiled" else model
    model.train()
    torch.manual_seed(SEED)

    def step(batch) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = forward(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    data = batches(tok)
    t0 = time.perf_counter()
    first = step(data[0])
    times = [step(b) for b in data[1:WARMUP]]
    if case == "profile":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in data[WARMUP:]:
                step(b)
        self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
        total = sum(self_us.values())
        shares = {kind: sum(self_us.get(op, 0) for op in ops) / total for kind, ops in KINDS.items()}
        return {"case": case, "self_time_shares": shares, "step_ms_under_profiler": total / 1000 / len(data[WARMUP:])}
    times = [step(b) for b in data[WARMUP:]]
    return {"case": case, "step_ms": 1000 * statistics.median(times), "first_step_s": first,
            "seconds_to_warm": time.perf_counter() - t0 - sum(times), "threads": torch.get_num_threads(),
            "trainable_params": sum(p.numel() for p in params)}


if __name__ == "__main__":
    run_cases(__file__, CASES, run_case, "cpu_step_levers_cpu_2core.json")

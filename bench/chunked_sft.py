"""The chunked causal-LM loss against its peers: SmolLM2-135M-Instruct LoRA SFT at batch 4 x 1,024 tokens on this
CPU, peak RSS and seconds per step for nbtune, nbtune holding the full logits, the transformers Trainer and TRL's
SFTTrainer, each case in its own process (its peak RSS is its own), on the same data.

The same for all: float32 weights and compute (the Trainer's default on a CPU), LoRA r=16 alpha=32 dropout 0.05 on
q/k/v (nbtune's ``add_lora`` default, the same ``LoraConfig`` for the peers), AdamW at 2e-4 without warm-up, the
same four rows of GSM8K question/answer text of exactly 1,024 tokens, so that every step is the same batch and the
losses compare step by step (LoRA starts at zero: step 1 is the base model's loss on all three). Gradient
checkpointing on everywhere, which is TRL's default (the ``*_no_checkpointing`` cases turn it off for nbtune and the
Trainer, to show what the logits are worth without it). TRL 1.16 already scores tokens through its own fused LM
head; on a CPU it takes up to 32,768 tokens per tile, so at 4,096 it holds them all.

One warm-up step (first-step allocations), then ``STEPS`` timed ones. Peak RSS is ``ru_maxrss`` over the whole
process (loading included), ``train_peak_above_load_mib`` what training added to the RSS after loading.

Measured (2 cores, one sitting): peak RSS / seconds per step: nbtune 3,799 MiB / 18.9 s; nbtune with the full
logits 6,685 / 21.3; the Trainer 5,401 / 18.9; TRL's SFTTrainer 7,535 / 27.2. Without checkpointing: nbtune 8,382 /
12.6, the Trainer 10,359 / 17.0. nbtune's peak is 0.70x the best peer's (the Trainer) and 0.50x TRL's; a hand loop
with the same chunked loss peaks at 3,457 MiB and one that only runs the checkpointed body (no output layer) at
3,521, so what is left is the body's own backward on this CPU, not the logits. The step-1 losses differ by 0.022
because SmolLM2 pads with its end-of-text token and the peers' collators mask every pad-id label, which drops the
last token of each row from their loss; nbtune's chunked and full-logits losses agree to the 4th decimal at every
step.

The rest is glibc's allocator, not tensors: with ``MALLOC_MMAP_THRESHOLD_=1048576`` in the environment (a fixed
threshold: tensors of 1 MiB and up are mapped and unmapped, not kept in a heap that only grows) nbtune peaks at
1,682 MiB and the Trainer at 3,723 (0.45x), the hand loop at 1,615. It costs time: nbtune alone, back to back,
26.1 s a step with it against 18.8 s without (mapping fresh pages on every large allocation), so it is a lever for a
run that does not fit, not a default. The threshold swept, nbtune alone, one after another in a later sitting (peak
RSS / seconds per step): glibc's default 3,666 / 19.9; 16 MiB 3,487 / 21.8; 8 MiB 2,129 / 24.7; 4 MiB 1,941 / 25.9.
8 MiB is the largest that brings the peak under 0.6x the Trainer's, for a quarter more time a step: nbtune's
``low_host_memory=True`` sets it from inside the process (case ``nbtune_low_host_memory``: 2,139 MiB, 24.3 s, the
same losses).

    .venv/bin/python bench/chunked_sft.py          # all cases, bench/results/chunked_sft_cpu_2core.json
    .venv/bin/python bench/chunked_sft.py --only nbtune
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import run_cases  # noqa: E402
from llm_sft import DATA, _folder  # noqa: E402

ROWS, TOKENS, STEPS, LR = 4, 1024, 3, 2e-4
CASES = {
    "nbtune": {"tool": "nbtune", "checkpointing": True},
    "nbtune_full_logits": {"tool": "nbtune", "checkpointing": True, "full_logits": True},
    "trainer": {"tool": "trainer", "checkpointing": True},
    "sft_trainer": {"tool": "trl", "checkpointing": True},
    "nbtune_low_host_memory": {"tool": "nbtune", "checkpointing": True, "low_host_memory": True},
    "nbtune_no_checkpointing": {"tool": "nbtune", "checkpointing": False},
    "trainer_no_checkpointing": {"tool": "trainer", "checkpointing": False},
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def texts(tokenizer) -> list[str]:
    """ROWS texts of more than TOKENS tokens (consecutive GSM8K question/answer pairs), which every tool cuts to
    TOKENS: nbtune and the Trainer case to TOKENS - 1 and the end-of-text token (the Trainer case does it by hand,
    as nbtune does), TRL to its first TOKENS. So every step is 4 x 1,024 tokens, the same ones but TRL's last."""
    with open(DATA) as f:
        rows = [json.loads(line) for line in f]
    out, k = [], 0
    while len(out) < ROWS:
        text = ""
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < TOKENS + 64:
            text += f"Question: {rows[k]['question']}\nAnswer: {rows[k]['answer']}\n\n"
            k += 1
        out.append(text)
    return out


def _lora_config():
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                      target_modules=["q_proj", "k_proj", "v_proj"])


def _run_nbtune(case: dict) -> tuple[list[float], float, float]:
    import nbtune
    from nbtune.core.training.events import StepEnded

    if case.get("full_logits"):
        # the comparison's only change: the task's forward finds no chunkable parts, so it calls the model with its
        # labels and the model builds every token's logits (what nbtune did before the chunked loss)
        from nbtune.core.tasks import causal_lm

        causal_lm.chunkable_parts = lambda model: None
    s = nbtune.load(_folder(), dtype="float32")
    s.add_lora(r=16, alpha=32, dropout=0.05, targets=["q_proj", "k_proj", "v_proj"])
    s.gradient_checkpointing = case["checkpointing"]
    rows = [{"text": t} for t in texts(s.tokenizer)]
    settings = dict(batch_size=ROWS, max_length=TOKENS, lr=LR, warmup=0.0, schedule="constant", log=False,
                    save_run=False, precision="no", seed=0, packing=False,
                    low_host_memory=case.get("low_host_memory", False))
    loaded = _current_rss_mib()
    ended: list[tuple[float, float]] = []  # (time, loss) at each step's end; the first step is the warm-up

    def clock(event, control):
        if isinstance(event, StepEnded):
            ended.append((time.perf_counter(), event.loss))

    s.train(rows, max_steps=STEPS + 1, callbacks=[clock], **settings)
    step_s = (ended[-1][0] - ended[0][0]) / STEPS
    losses = [loss for _, loss in ended]
    return losses, step_s, loaded


def _run_hf(case: dict) -> tuple[list[float], float, float]:
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    torch.manual_seed(0)
    folder = _folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    dataset = Dataset.from_dict({"text": texts(tokenizer)})
    common = dict(output_dir="/tmp/nbtune-bench-chunked", per_device_train_batch_size=ROWS, learning_rate=LR,
                  max_steps=STEPS + 1, lr_scheduler_type="constant", warmup_steps=0, logging_steps=1,
                  report_to=[], save_strategy="no", use_cpu=True, bf16=False, seed=0, dataloader_num_workers=0,
                  gradient_checkpointing=case["checkpointing"], disable_tqdm=True)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            times.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    if case["tool"] == "trl":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, max_length=TOKENS, packing=False, dataset_text_field="text")
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=_lora_config(), callbacks=[Clock()])
    else:
        model = get_peft_model(model, _lora_config())
        if case["checkpointing"]:
            model.enable_input_require_grads()  # what TRL and peft's prepare do for checkpointing under LoRA
        def encode(batch):
            ids = tokenizer(batch["text"], truncation=True, max_length=TOKENS - 1)["input_ids"]
            return {"input_ids": [row + [tokenizer.eos_token_id] for row in ids]}

        tokens = dataset.map(encode, batched=True, remove_columns=["text"])
        trainer = Trainer(model=model, args=TrainingArguments(**common), train_dataset=tokens,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[Clock()])
    loaded = _current_rss_mib()
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    step_s = (times[-1] - times[1]) / STEPS  # the first step is the warm-up
    return losses, step_s, loaded


def run_case(name: str) -> dict:
    case = CASES[name]
    losses, step_s, loaded = (_run_nbtune if case["tool"] == "nbtune" else _run_hf)(case)
    peak = _rss_mib()
    return {"case": name, "seconds_per_step": round(step_s, 2), "peak_rss_mib": round(peak),
            "train_peak_above_load_mib": round(peak - loaded), "losses": [round(x, 4) for x in losses]}


if __name__ == "__main__":
    run_cases(__file__, CASES, run_case, "chunked_sft_cpu_2core.json")

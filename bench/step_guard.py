"""Benchmark: what atomic steps cost. Time per training step of all-MiniLM-L6-v2 on SST-2 sentences with the
rollback snapshot (StepGuard) as nbtune uses it, against the same runs with the snapshot switched off.

For each set-up (LoRA r=8, head only, full fine-tuning) both variants run interleaved, each in its own process, three
rounds; medians are reported with the snapshot interval the guard chose and its share of the step time.

    python bench/step_guard.py                      # the table, JSON in bench/results/step_guard_cpu_2core.json
    python bench/step_guard.py --only lora:on       # one run, JSON on stdout
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
SETUPS = ("lora", "head", "full")
N_TRAIN, BATCH, STEPS = 640, 32, 20


def sentences() -> list[dict]:
    with open(DATA / "train.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:N_TRAIN]
    return [{"sentence": r["sentence"], "label": int(r["label"])} for r in rows]


def one(setup: str, guard: bool) -> dict:
    import torch

    import nbtune
    from nbtune.core.training import transaction
    from nbtune.core.training.events import StepEnded

    torch.set_num_threads(2)
    if not guard:
        transaction.SNAPSHOT_MAX_BYTES = -1
    copies = {"n": 0, "seconds": 0.0}
    original = transaction.StepGuard.before_update

    def counted(self, step_seconds):
        before = self.snapshot
        started = time.perf_counter()
        original(self, step_seconds)
        if self.snapshot is not before:
            copies["n"] += 1
            copies["seconds"] += time.perf_counter() - started

    transaction.StepGuard.before_update = counted  # measuring only, in this benchmark process
    s = nbtune.load(nbtune.default_model_path(), task="text-classification", num_labels=2)
    if setup == "lora":
        s.add_lora(r=8)
    elif setup == "head":
        s.freeze("all")
        s.unfreeze("head")
    times = []

    def timer(event, control):
        if isinstance(event, StepEnded):
            times.append(time.perf_counter())

    s.train(sentences(), max_steps=STEPS, batch_size=BATCH, lr=1e-4, log=False, callbacks=[timer],
            group_by_length=False)
    steps = [b - a for a, b in zip(times[2:], times[3:])]  # steady state: the first steps warm up
    return {"setup": setup, "guard": guard, "step_s": statistics.median(steps), "snapshots": copies["n"],
            "copy_s": copies["seconds"] / max(copies["n"], 1), "trainable": s.summary().trainable}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.only:
        setup, flag = args.only.split(":")
        print(json.dumps(one(setup, flag == "on")))
        return
    results: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for setup in SETUPS:
            for flag in ("on", "off"):
                out = subprocess.run([sys.executable, __file__, "--only", f"{setup}:{flag}"], capture_output=True,
                                     text=True, check=True).stdout.strip().splitlines()[-1]
                results.setdefault(f"{setup}:{flag}", []).append(json.loads(out))
    table = []
    for setup in SETUPS:
        on = statistics.median(r["step_s"] for r in results[f"{setup}:on"])
        off = statistics.median(r["step_s"] for r in results[f"{setup}:off"])
        first = results[f"{setup}:on"][0]
        table.append({"setup": setup, "trainable": first["trainable"], "step_s_guard": on, "step_s_no_guard": off,
                      "overhead": on / off - 1, "snapshots_in_steps": f"{first['snapshots']}/{STEPS}",
                      "copy_s": first["copy_s"]})
    print("| set-up | trainable | step with guard | without | overhead | snapshots | one copy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in table:
        print(f"| {row['setup']} | {row['trainable']:,} | {row['step_s_guard'] * 1000:.0f} ms | "
              f"{row['step_s_no_guard'] * 1000:.0f} ms | {row['overhead'] * 100:+.1f}% | {row['snapshots_in_steps']} | "
              f"{row['copy_s'] * 1000:.1f} ms |")
    out = ROOT / "bench" / "results" / "step_guard_cpu_2core.json"
    out.write_text(json.dumps({"rounds": args.rounds, "steps": STEPS, "batch": BATCH, "table": table,
                               "runs": results}, indent=2))


if __name__ == "__main__":
    main()

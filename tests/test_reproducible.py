"""One seed governs everything random, from the head created at load to the end of training: the same script in
two fresh processes gives bit-identical weights, and so does ``nbtune run`` twice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

import nbtune

from training_helpers import toy_rows

_SCRIPT = textwrap.dedent("""
    import sys, torch, nbtune
    sys.path.insert(0, {tests!r})
    from training_helpers import toy_rows
    torch.manual_seed(int(sys.argv[2]))  # the user's own random state differs between the processes
    s = nbtune.load({model!r}, task="text-classification", num_labels=3)
    s.freeze("all")
    s.unfreeze("head")
    s.reset_head(num_labels=2)
    s.add_lora(r=4)
    s.train(toy_rows(32), epochs=1, batch_size=8, lr=1e-2, log=False)
    torch.save({{n: p.detach() for n, p in s.model.named_parameters()}}, sys.argv[1])
""")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_same_script_gives_bit_identical_weights_in_two_processes(tiny_dirs, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent), model=str(tiny_dirs["bert"])))
    outs = []
    for i, user_seed in enumerate((1, 2)):
        out = tmp_path / f"w{i}.pt"
        done = subprocess.run([sys.executable, str(script), str(out), str(user_seed)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(torch.load(out))
    assert _same(*outs)


def test_nbtune_run_twice_gives_the_same_weights_and_losses(tiny_dirs, tmp_path):
    data = tmp_path / "train.csv"
    pd.DataFrame(toy_rows(32)).to_csv(data, index=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {tiny_dirs['bert']}\ntask: text-classification\nnum_labels: 2\n"
                      f"data: {{train: {data}, text: sentence}}\nfreeze: [all]\nunfreeze: [head]\n"
                      "train: {epochs: 1, batch_size: 8, lr: 0.01}\n")
    results = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        done = subprocess.run([sys.executable, "-m", "nbtune", "run", str(recipe), "--output", str(out), "--quiet"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append((load_file(str(out / "model" / "model.safetensors")),
                        pd.read_json(out / "history.jsonl", lines=True)["loss"].tolist()))
    assert _same(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_seeded_initialisation_leaves_the_users_random_state_alone(tiny_dirs):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=3)
    s.add_lora(r=2)
    assert torch.equal(torch.rand(3), expected)
    other = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=3, seed=7)
    assert not torch.equal(other.model.classifier.weight, nbtune.load(
        tiny_dirs["bert"], task="text-classification", num_labels=3).model.classifier.weight)

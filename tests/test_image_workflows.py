"""The rest of nbtune for images: a recipe file run by ``nbtune run`` and on two processes (accelerate launch, gloo
on the CPU), a training process killed mid-run and resumed from its run folder, a race of set-ups, LoRA merged
and reloaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import run_on_one_and_two_processes
from image_helpers import save_tiny_vision, write_image_folder
from safetensors.torch import load_file

import nbtune

pytestmark = pytest.mark.slow

PY = sys.executable
TESTS = Path(__file__).resolve().parent
DIGITS = [str(i) for i in range(10)]
TRAIN = {"epochs": 2, "lr": 2e-3, "batch_size": 8, "seed": 3, "save_every": 4, "keep_checkpoints": 10}


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return save_tiny_vision("vit", tmp_path_factory.mktemp("vision") / "vit")  # no dropout: processes agree


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("digits"), {"train": (0, 64), "val": (300, 32)})


@pytest.fixture(scope="module")
def recipe(vit, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "images.yaml"
    path.write_text(textwrap.dedent(f"""\
        model: {vit}
        task: image-classification
        labels: [{", ".join(DIGITS)}]
        data: {{train: {digits / "train"}, eval: {digits / "val"}}}
        freeze: [embeddings]
        train: {{{", ".join(f"{k}: {v}" for k, v in TRAIN.items())}}}
        """))
    return path


@pytest.fixture(scope="module")
def runs(recipe, tmp_path_factory):
    return run_on_one_and_two_processes(recipe, tmp_path_factory.mktemp("runs"))


def test_an_image_recipe_runs_from_the_command_line_and_on_two_processes_alike(runs, digits):
    one, two = load_file(str(runs / "one" / "model" / "model.safetensors")), \
        load_file(str(runs / "two" / "model" / "model.safetensors"))
    diff = max(float((one[k] - two[k]).abs().max()) for k in one)
    print(f"max |w1 - w2| = {diff:.2e}")
    assert diff < 1e-5
    s = nbtune.load(runs / "one" / "model")  # the processor came with it: predictions run on image files
    assert s.task == "image-classification" and s.model.config.id2label[7] == "7"
    assert s.predict([str(next((digits / "val" / "4").iterdir()))])[0]["label"] in DIGITS


KILLED = textwrap.dedent("""
    import nbtune
    s = nbtune.load({vit!r}, labels={digits_names!r})
    s.freeze("embeddings")
    s.train({train!r}, eval={val!r}, run_name="killed", save_minutes=0.0001, log=False, epochs=3, lr=2e-3,
            batch_size=8, seed=3)
""")


def test_a_killed_image_run_resumes_from_its_run_folder_to_the_uninterrupted_weights(vit, digits, tmp_path):
    from nbtune.core.training.checkpoint import complete_checkpoints

    runs = tmp_path / "runs"
    env = {**os.environ, "NBTUNE_RUNS_DIR": str(runs)}
    script = tmp_path / "killed.py"
    script.write_text(KILLED.format(vit=str(vit), digits_names=DIGITS, train=str(digits / "train"),
                                    val=str(digits / "val")))
    proc = subprocess.Popen([PY, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(complete_checkpoints(runs / "killed" / "checkpoints")) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    step = int(complete_checkpoints(runs / "killed" / "checkpoints")[-1].name.split("-")[1])
    assert 0 < step < 24  # killed mid-run

    ref = nbtune.load(vit, labels=DIGITS)
    ref.freeze("embeddings")
    ref.train(str(digits / "train"), eval=str(digits / "val"), save_run=False, log=False, epochs=3, lr=2e-3,
              batch_size=8, seed=3)
    previous = os.environ.get("NBTUNE_RUNS_DIR")
    os.environ["NBTUNE_RUNS_DIR"] = str(runs)
    try:
        result = nbtune.resume("killed", log=False)  # the images come from the run folder's own copy
    finally:
        os.environ["NBTUNE_RUNS_DIR"] = previous or ""
    resumed = result.session
    assert resumed.training.global_step == 24
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(), ref.model.state_dict().values()))


def test_a_race_of_image_set_ups_and_lora_merged_and_reloaded(vit, digits, tmp_path):
    setups = {"head": {"freeze": ["all"], "unfreeze": ["head"]}, "lora": {"lora": {"r": 4}}, "top": {
        "freeze": ["all"], "unfreeze": ["top:1"]}}
    comparison = nbtune.race(vit, str(digits / "train"), eval=str(digits / "val"), setups=setups,
                             task="image-classification", labels=DIGITS, name=f"race-{tmp_path.name}", epochs=1,
                             batch_size=8, log=False)
    assert comparison.differing["method"] == ["head", "lora", "partial"]
    assert all(r.info["steps"] == 8 for r in comparison.runs)  # the same budget
    assert "settings that differ" in repr(comparison)

    s = nbtune.load(vit, labels=DIGITS)
    s.add_lora(r=4)
    s.train(str(digits / "train"), epochs=1, batch_size=8, lr=5e-3, log=False, save_run=False)
    paths = [str(p) for p in sorted((digits / "val").rglob("*.png"))[:5]]
    before = s.predict(paths)
    s.merge()
    assert not any("lora" in n for n, _ in s.model.named_parameters())
    merged = s.predict(paths)
    assert [p["label"] for p in merged] == [p["label"] for p in before]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(merged, before))
    s.save(tmp_path / "merged")
    assert nbtune.load(tmp_path / "merged").predict(paths) == merged

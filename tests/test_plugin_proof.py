"""Proof that the core is open to plug-ins: ``vector_plugin`` (outside ``nbtune/``) registers a modality, a task, an
objective and a transformers model class, and they go through every part of nbtune with no edit inside it: load ->
layer tree -> freeze -> LoRA -> train with the live dashboard -> save -> reload -> recipe export and ``%%finetune``
-> ``nbtune.resume`` after a SIGKILL in a fresh process that never imported the plug-in itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import nbtune
from nbtune.core.training.checkpoint import complete_checkpoints
from nbtune.core.training.events import FitEnded, StepEnded

TESTS = Path(__file__).resolve().parent
SETTINGS = dict(objective="huber", delta=0.5, epochs=4, batch_size=16, lr=2e-2, seed=3, log=False)


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5, -1.0], dtype=np.float32)
    return pd.DataFrame({"vector": list(x), "target": y})


@pytest.fixture(scope="module")
def plugin():
    import vector_plugin

    return vector_plugin


@pytest.fixture
def model_dir(plugin, tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "toy-vectors"
    plugin.VectorRegressor(plugin.VectorConfig()).save_pretrained(folder)
    return folder


def _set_up(folder):
    s = nbtune.load(folder)
    s.freeze("body.inp")
    s.add_lora(r=4, targets="all-linear")
    return s


def _weights(s) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in s.model.named_parameters()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_tree_freeze_lora_train_save_reload(plugin, model_dir, tmp_path):
    s = nbtune.load(model_dir)
    assert s.task == "vector-regression" and s.modality.name == "vector"  # from the registered auto class
    tree = s.layers()
    rows = {row.name: row for row in tree.rows}
    assert rows["body.inp"].shapes == {"weight": (16, 6), "bias": (16,)} and rows["head"].total_params == 17
    assert "  inp " in repr(tree)

    s.freeze("body.inp")
    assert not s.model.body.inp.weight.requires_grad and s.model.body.mid.weight.requires_grad
    probes = len(plugin.PROBES)
    s.add_lora(r=4, targets="all-linear")
    assert len(plugin.PROBES) == probes + 1  # the modality's probe batch ran through the adapted model
    trainable = {n for n, p in s.model.named_parameters() if p.requires_grad}
    assert any("body.mid.lora_A" in n for n in trainable) and any("head" in n for n in trainable)
    assert not any(n.endswith("body.inp.base_layer.weight") for n in trainable)

    train, dev = _table(96, 1), _table(32, 2)
    before = s.evaluate(dev)["mae"]
    events = []
    from nbtune.ui import TrainingDashboard

    dash = TrainingDashboard(title="vectors")
    run = s.train(train, eval=dev, callbacks=[lambda e, c: events.append(e), dash], **SETTINGS)
    after = s.evaluate(dev)["mae"]
    assert after < 0.7 * before, (before, after)
    steps = [e for e in events if isinstance(e, StepEnded)]
    assert len(steps) == run.steps == 24 and isinstance(events[-1], FitEnded)
    assert all("abs_error" in e.metrics for e in steps)  # the objective's step metric reaches the events...
    assert all("abs_error" in r for r in dash.rows if "loss" in r)  # ...and the dashboard's history
    first, last = np.mean([e.loss for e in steps[:4]]), np.mean([e.loss for e in steps[-4:]])
    assert last < first

    # per-epoch augmentation: training encodings are random and differ between epochs, evaluation's are not
    trained = [t for _, t in plugin.ENCODED]
    assert True in trained and False in trained

    s.save(tmp_path / "saved")
    meta = json.loads((tmp_path / "saved" / "nbtune.json").read_text())
    assert meta["plugins"] == ["vector_plugin"]
    again = nbtune.load(tmp_path / "saved")
    probe = [list(map(float, v)) for v in dev["vector"][:5]]
    assert [p["value"] for p in again.predict(probe)] == [p["value"] for p in s.predict(probe)]
    assert s.predict(probe[0]) == s.predict([probe[0]])  # one vector is one input (the modality says so)


def test_bad_objective_setting_changes_nothing(plugin, model_dir):
    s = _set_up(model_dir)
    weights = _weights(s)
    with pytest.raises(nbtune.TrainConfigError, match="delta must be a positive number"):
        s.train(_table(32, 1), **{**SETTINGS, "delta": -1})
    assert _same(weights, _weights(s)) and s.history.rows == []


def test_recipe_export_and_finetune_cell_reproduce_the_run(plugin, model_dir, tmp_path, shell):
    import yaml

    s = _set_up(model_dir)
    train = _table(64, 1)
    s.train(train, save_run=False, **{**SETTINGS, "epochs": 2})
    path = s.export(tmp_path / "recipe.yaml", data={"train": train})
    recipe = yaml.safe_load(path.read_text())
    assert recipe["plugins"] == ["vector_plugin"] and recipe["train"]["objective"] == "huber"
    assert recipe["train"]["objective_settings"] == {"delta": 0.5} and recipe["task"] == "vector-regression"
    stored = pd.read_json(tmp_path / recipe["data"]["train"], lines=True)  # the modality stored the vectors as files
    assert all(v.startswith("vectors/") for v in stored["vector"])
    assert np.array_equal(np.stack([np.load(tmp_path / v) for v in stored["vector"]]), np.stack(train["vector"]))

    recipe["data"]["train"] = str(tmp_path / recipe["data"]["train"])  # the cell runs from the notebook's folder
    shell.run_cell("%%finetune -o vectors\n" + yaml.safe_dump(recipe)).result
    session = shell.user_ns["vectors"].session
    assert _same(_weights(session), _weights(s))  # same set-up, same seed: the same weights


KILLED = """
import sys, time, nbtune, vector_plugin, pandas as pd
nbtune.set_runs_folder({runs!r})
from test_plugin_proof import _set_up, _table, SETTINGS
s = _set_up({model!r})
print("training", flush=True)
# 24 steps of a toy model take well under a second: a pause after each step (a listener, which changes nothing the
# run computes) leaves the parent the time to see two checkpoints and kill the run in the middle
pause = lambda event, control: time.sleep(0.05) if type(event).__name__ == "StepEnded" else None
s.train(_table(96, 1), eval=_table(32, 2), run_name="vectors", save_minutes=0.0005, callbacks=[pause], **SETTINGS)
"""

RESUMED = """
import sys, torch, nbtune
assert "vector_plugin" not in sys.modules
nbtune.set_runs_folder({runs!r})
result = nbtune.resume("vectors", log=False)
assert "vector_plugin" in sys.modules  # imported by the run folder's record, not by this script
torch.save({{n: p.detach() for n, p in result.session.model.named_parameters()}}, {out!r})
print("resumed", result.outcome.value, result.global_step, flush=True)
"""


def _python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_resume_after_a_kill_in_a_process_that_never_imported_the_plugin(plugin, model_dir, tmp_path):
    runs = tmp_path / "runs"
    ref = _set_up(model_dir)
    ref.train(_table(96, 1), eval=_table(32, 2), save_run=False, **SETTINGS)

    proc = _python(KILLED.format(runs=str(runs), model=str(model_dir)))
    checkpoints = runs / "vectors" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(complete_checkpoints(checkpoints)) < 2 and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()  # it was killed, it did not finish
    done = complete_checkpoints(checkpoints)
    assert done and 0 < int(done[-1].name.split("-")[1]) < 24
    kept = pd.read_parquet(runs / "vectors" / "data" / "train.parquet")  # the run folder keeps the data's files
    assert len(list((runs / "vectors" / "data" / "vectors").glob("*.npy"))) == 96 + 32
    assert all((runs / "vectors" / "data" / v).is_file() for v in kept["vector"])

    out = tmp_path / "resumed.pt"
    resumed = _python(RESUMED.format(runs=str(runs), out=str(out)))
    text, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, text
    assert "resumed completed 24" in text
    assert _same(torch.load(out), _weights(ref))  # augmentations drawn again the same: the uninterrupted weights

"""Run folders and ``nbtune.resume``: every run has a home on disk, and a run cut short anywhere (interrupt, a
killed kernel) continues in a new session to the uninterrupted run's weights and losses."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import nbtune
from nbtune.core.training.events import Outcome, StepEnded

from training_helpers import toy_rows

SETTINGS = dict(epochs=3, batch_size=8, lr=1e-3, seed=4, log=False, max_length=16)


@pytest.fixture
def runs(tmp_path):
    folder = nbtune.set_runs_folder(tmp_path / "runs")
    yield folder
    nbtune.set_runs_folder(os.environ["NBTUNE_RUNS_DIR"])


def _weights(s):
    return {n: p.detach().clone() for n, p in s.model.named_parameters()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_every_run_has_a_folder_with_settings_data_history_and_weights(tiny_dirs, runs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.add_lora(r=2)
    data = pd.DataFrame(toy_rows(32))
    run = s.train(data, eval=data, run_name="first", **SETTINGS)
    folder = Path(run.run_folder)
    assert folder == runs / "first"
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "completed" and info["steps"] == run.global_step == 12 and info["method"] == "lora"
    assert info["config"]["lr"] == 1e-3 and info["best"]["metric"] == "accuracy" and info["size"] > 0
    history = pd.read_json(folder / "history.jsonl", lines=True)
    assert history["loss"].dropna().tolist() == pytest.approx(s.history.losses())
    assert pd.read_parquet(folder / "data" / "train.parquet").equals(data)
    reloaded = nbtune.load(folder / "final")
    assert _same(_weights(reloaded), _weights(s))
    with pytest.raises(nbtune.TrainingError, match="run named 'first' exists.*nbtune.resume"):
        s.train(data, run_name="first", **SETTINGS)


def test_resume_after_an_interrupt_in_a_new_session(tiny_dirs, runs):
    data = toy_rows(32)
    torch.manual_seed(0)
    ref = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    ref.freeze("bert.embeddings")
    ref.train(data, save_run=False, **SETTINGS)

    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.freeze("bert.embeddings")

    def interrupt(event, control):
        if isinstance(event, StepEnded) and event.step == 7:
            raise KeyboardInterrupt

    run = s.train(data, run_name="cut", callbacks=[interrupt], **SETTINGS)
    assert run.outcome is Outcome.INTERRUPTED
    assert (runs / "cut" / "checkpoints" / "step-00000007").is_dir()  # written as the run ended early
    del s  # as after a kernel restart: nothing of the session is left in memory
    result = nbtune.resume("cut", log=False)
    assert result.outcome is Outcome.COMPLETED and result.global_step == 12
    assert result.session.history.losses() == pytest.approx(ref.history.losses(), abs=1e-6)
    assert _same(_weights(result.session), _weights(ref))
    info = json.loads((runs / "cut" / "run.json").read_text())
    history = pd.read_json(runs / "cut" / "history.jsonl", lines=True)
    # the console, the run's files and the session count the same steps, once each, after the resume
    assert info["status"] == "completed" and info["steps"] == 12
    assert history["loss"].notna().sum() == 12 and history.loc[history["loss"].notna(), "step"].tolist() == list(range(1, 13))


def test_resuming_a_finished_run_returns_its_result_without_training(tiny_dirs, runs):
    data = pd.DataFrame(toy_rows(32))
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    done = s.train(data, eval=data, run_name="done", **SETTINGS)

    def interrupt(event, control):
        if isinstance(event, StepEnded) and event.step == 3:
            raise KeyboardInterrupt

    nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2).train(
        data, run_name="cut", callbacks=[interrupt], **SETTINGS)
    assert {r["name"]: r["resume"] for r in nbtune.runs().rows()} == {"done": "finished", "cut": "yes"}
    assert "resumable" in repr(nbtune.runs())
    before = (runs / "done" / "run.json").read_text(), (runs / "done" / "history.jsonl").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    original, nbtune.Session.train = nbtune.Session.train, no_training
    try:
        result = nbtune.resume("done", log=False, epochs=5)
    finally:
        nbtune.Session.train = original
    assert result.outcome is Outcome.COMPLETED and result.steps == 0 and result.global_step == done.global_step == 12
    assert "already finished" in result.messages[0] and "epochs were not used" in result.messages[0]
    assert result.metrics == pytest.approx(done.metrics)
    assert result.history.losses() == pytest.approx(done.history.losses())
    assert result.session.history.losses() == pytest.approx(s.history.losses())
    assert _same(_weights(result.session), _weights(s))
    assert ((runs / "done" / "run.json").read_text(), (runs / "done" / "history.jsonl").read_text()) == before


def test_resume_names_the_runs_it_knows(runs):
    with pytest.raises(nbtune.TrainingError, match="No run 'nope'"):
        nbtune.resume("nope")


KERNEL_TRAIN = """
import sys, torch, nbtune
sys.path.insert(0, {tests!r})
from training_helpers import toy_rows
nbtune.set_runs_folder({runs!r})
torch.manual_seed(0)
s = nbtune.load({model!r}, task="text-classification", num_labels=2)
s.train(toy_rows(64), run_name="killed", save_minutes=0.0005, epochs=6, batch_size=8, lr=1e-3, seed=4, log=False,
        max_length=16)
"""

KERNEL_RESUME = """
import torch, nbtune
nbtune.set_runs_folder({runs!r})
result = nbtune.resume("killed", log=False)
torch.save({{n: p.detach() for n, p in result.session.model.named_parameters()}}, {out!r})
print("resumed", result.outcome.value, result.global_step)
"""


@pytest.mark.kernel
def test_a_killed_kernel_resumes_in_a_new_kernel(tiny_dirs, tmp_path):
    from jupyter_client.manager import start_new_kernel

    from nbtune.core.training.checkpoint import complete_checkpoints

    runs = tmp_path / "runs"
    torch.manual_seed(0)
    ref = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    ref.train(toy_rows(64), save_run=False, epochs=6, batch_size=8, lr=1e-3, seed=4, log=False, max_length=16)

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        kc.execute(KERNEL_TRAIN.format(tests=str(Path(__file__).parent), runs=str(runs), model=str(tiny_dirs["bert"])))
        deadline = time.time() + 120
        while time.time() < deadline and len(complete_checkpoints(runs / "killed" / "checkpoints")) < 2:
            time.sleep(0.05)
        assert complete_checkpoints(runs / "killed" / "checkpoints"), "no checkpoint before the kill"
        os.kill(km.provisioner.pid if hasattr(km, "provisioner") and km.provisioner else km.kernel.pid, signal.SIGKILL)
        step = int(complete_checkpoints(runs / "killed" / "checkpoints")[-1].name.split("-")[1])
        assert 0 < step < 48  # killed mid-run
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        out = tmp_path / "resumed.pt"
        chunks = []
        reply = kc.execute_interactive(KERNEL_RESUME.format(runs=str(runs), out=str(out)), timeout=300,
                                       output_hook=lambda m: chunks.append(m["content"].get("text", ""))
                                       if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert "resumed completed 48" in "".join(chunks)
    assert _same(torch.load(out), _weights(ref))


def test_runs_table_compare_and_a_method_race(tiny_dirs, runs, shell):
    from IPython.utils.capture import capture_output

    data = pd.DataFrame(toy_rows(48))
    setups = {"full": {}, "head": {"freeze": ["all"], "unfreeze": ["head"]}, "lora": {"lora": {"r": 4}}}
    comparison = nbtune.race(tiny_dirs["bert"], data, eval=data, setups=setups, task="text-classification",
                             num_labels=2, name="race", epochs=1, batch_size=8, log=False)
    assert [r.name for r in comparison.runs] == ["race-full", "race-head", "race-lora"]
    assert comparison.differing["method"] == ["full", "head", "lora"]
    assert comparison.differing["lr"] == [5e-5, 3e-3, 5e-4]  # each set-up's own default rate
    assert all(r.info["steps"] == 6 for r in comparison.runs)  # the same budget
    table = nbtune.runs()
    assert {r["name"] for r in table.rows()} == {"race-full", "race-head", "race-lora"}
    assert "race-lora" in repr(table) and "<table" in table._repr_html_() and len(table.to_pandas()) == 3
    assert "settings that differ" in repr(nbtune.compare("race-full", "race-lora"))
    shell.user_ns["cmp"] = comparison
    with capture_output() as cap:
        shell.run_cell("from IPython.display import display\ndisplay(cmp)")
    html = cap.outputs[0].data["text/html"]
    assert html.count("data:image/png;base64") == 1 and "settings that differ" in html


def test_resume_by_magic_registers_the_session(tiny_dirs, runs, shell):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)

    def interrupt(event, control):
        if isinstance(event, StepEnded) and event.step == 3:
            raise KeyboardInterrupt

    s.train(toy_rows(32), run_name="magic", callbacks=[interrupt], **SETTINGS)
    magics = shell.magics_manager.registry["NbtuneMagics"]
    magics.widgets = False
    result = shell.run_cell("%nbtune resume magic log=False").result
    assert result.outcome is Outcome.COMPLETED and magics.session() is result.session
    assert "magic" in repr(shell.run_cell("%nbtune runs").result)


def test_a_finetune_cell_races_set_ups_and_each_run_keeps_its_recipe(tiny_dirs, runs, shell):
    import yaml

    magics = shell.magics_manager.registry["NbtuneMagics"]
    magics.widgets = False
    shell.user_ns.update(bert_dir=str(tiny_dirs["bert"]), race_df=pd.DataFrame(toy_rows(32)))
    cell = ("%%finetune -o raced\nmodel: $bert_dir\ntask: text-classification\nnum_labels: 2\n"
            "data: {train: $race_df, eval: $race_df}\ntrain: {epochs: 1, batch_size: 8}\n"
            "race: {head: {freeze: [all], unfreeze: [head]}, lora: {lora: {r: 2}}}\n")
    shell.run_cell(cell)
    comparison = shell.user_ns["raced"]
    assert [r.info["method"] for r in comparison.runs] == ["head", "lora"]
    recipe = yaml.safe_load((comparison.runs[1].folder / "recipe.yaml").read_text())
    assert recipe["lora"]["r"] == 2 and recipe["data"]["train"].endswith("train.parquet")


def test_data_parquet_cannot_hold_still_trains_and_resume_asks_for_it(tiny_dirs, runs):
    rows = [dict(r, extra=[1, "mixed"] if i % 2 else 3.5) for i, r in enumerate(toy_rows(32))]  # mixed objects
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    def interrupt(event, control):
        if isinstance(event, StepEnded) and event.step == 1:
            raise KeyboardInterrupt

    run = s.train(pd.DataFrame(rows), run_name="mixed", max_steps=2, batch_size=8, log=False, callbacks=[interrupt])
    assert run.outcome is Outcome.INTERRUPTED and any("keeps no copy of the data" in m for m in run.messages)
    with pytest.raises(nbtune.TrainingError, match="keeps no copy of its training data.*data="):
        nbtune.resume("mixed")

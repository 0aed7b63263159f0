"""Notebook faces in a real Jupyter kernel: the quickstart executed by nbclient, and the Stop button clicked
by sending the kernel a widget message while a training cell is busy (as a browser would)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from cli_helpers import catches

from nbtune.notebooks import execute, outputs

from kernel_helpers import SETUP, TESTS, click_stop_mid_run, reply, run, start_kernel, stop_kernel, wait_for

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_notebook(tmp_path):
    nb, written, html = execute(ROOT / "notebooks" / "quickstart.ipynb", tmp_path, cwd=ROOT / "notebooks")
    assert written.exists() and html.exists() and "nbtune-summary" in html.read_text()
    htmls = [o["data"]["text/html"] for o in outputs(nb, "text/html")]
    assert any("nbtune-summary" in h for h in htmls)  # the summary table
    assert any("nbtune-tree" in h for h in htmls)  # the layer tree
    finals = [h for h in htmls if "nbtune-dashboard" in h and "data:image/png;base64" in h]
    assert finals and all(h.count("data:image/png;base64") == 1 for h in finals)  # final loss curves, one copy
    assert not outputs(nb, "image/png")  # no second copy of any picture
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    before, after = map(float, re.search(r"accuracy before ([\d.]+) after ([\d.]+)", text).groups())
    assert after > before and after >= 0.75
    assert "widgets" in nb.metadata  # widget state stored with the notebook


@pytest.fixture
def kernel():
    km, kc = start_kernel()
    yield km, kc
    stop_kernel(km, kc)


def test_stop_button_stops_a_busy_cell(kernel, tiny_dirs):
    km, kc = kernel
    assert click_stop_mid_run(kc, tiny_dirs["bert"]) < 5


def test_interrupt_kernel_is_a_clean_stop(kernel, tiny_dirs):
    km, kc = kernel
    run(kc, SETUP.format(tests=str(TESTS), model=str(tiny_dirs["bert"])))
    msg_id = kc.execute("run = s.train(toy_rows(1600), callbacks=[dash, pace], epochs=1, batch_size=8, log=False)")
    wait_for(kc, msg_id, "STEP_TWO")
    assert catches(km.provisioner.pid, signal.SIGINT)  # the kernel will run its handler (not ignored, not blocked)
    km.interrupt_kernel()
    assert reply(kc, msg_id)["content"]["status"] == "ok"  # no traceback: train() returned
    out = run(kc, "print(run.reason, '|', run.cancelled, '|', run.steps == len(s.history.losses()))")
    assert out.strip() == "interrupted | True | True"
    resumed = run(kc, "r = s.train(toy_rows(1600), resume=True, epochs=1, batch_size=8, log=False); "
                       "print(r.reason, s.training.global_step)")
    assert resumed.split() == ["completed", "200"]


def test_python_api_train_shows_the_dashboard_in_a_kernel(kernel, tiny_dirs):
    """progress="auto": s.train() from plain Python in a notebook kernel gets the live dashboard, whose final
    static picture (PNG + HTML) replaces it when the run ends; outside a kernel the same call prints text."""
    km, kc = kernel
    run(kc, f"import sys; sys.path.insert(0, {str(TESTS)!r})\nimport nbtune\nfrom training_helpers import toy_rows\n"
             f"s = nbtune.load({str(tiny_dirs['bert'])!r}, task='text-classification', num_labels=2)")
    shown = []
    reply = kc.execute_interactive("run = s.train(toy_rows(32), epochs=1, batch_size=8)", timeout=180,
                                   output_hook=lambda m: shown.append(m))
    assert reply["content"]["status"] == "ok"
    kinds = [m["msg_type"] for m in shown]
    assert "display_data" in kinds and "update_display_data" in kinds
    final = [m for m in shown if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert "nbtune-dashboard" in final["text/html"] and final["text/html"].count("data:image/png;base64") == 1
    assert "image/png" not in final and "loss" in final["text/plain"]
    assert not any(m["msg_type"] == "stream" and "step 4" in m["content"].get("text", "") for m in shown)


def test_loading_and_saving_leave_no_dependency_output_in_the_cell(kernel, smollm_gguf, tmp_path):
    """No GGUF de-quantisation bar (a tqdm widget a saved notebook shows at 0%), no "Writing model shards" bar,
    no FutureWarning about transformers' internals: the cell shows only what the user asked for."""
    km, kc = kernel
    shown = []
    code = (f"import nbtune\ns = nbtune.load({str(smollm_gguf)!r}, task='causal-lm')\n"
            "m = nbtune.load(nbtune.default_model_path(), task='text-classification', num_labels=2)\n"
            f"m.add_lora(r=4); m.save({str(tmp_path / 'a')!r}); nbtune.load({str(tmp_path / 'a')!r})\n"
            f"m.merge(); m.save({str(tmp_path / 'b')!r}); nbtune.load({str(tmp_path / 'b')!r}); print('DONE')")
    reply = kc.execute_interactive(code, timeout=300, output_hook=shown.append)
    assert reply["content"]["status"] == "ok"
    outputs = [m for m in shown if m["msg_type"] in ("stream", "display_data", "update_display_data")]
    assert [m["content"].get("text") for m in outputs] == ["DONE\n"], outputs

"""Notebook faces in a real Jupyter kernel: the quickstart executed by nbclient, and the Stop button clicked
by sending the kernel a widget message while a training cell is busy (as a browser would)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nbtune.notebooks import execute, outputs

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def test_quickstart_notebook(tmp_path):
    nb, written, html = execute(ROOT / "notebooks" / "quickstart.ipynb", tmp_path, cwd=ROOT / "notebooks")
    assert written.exists() and html.exists() and "nbtune-summary" in html.read_text()
    htmls = [o["data"]["text/html"] for o in outputs(nb, "text/html")]
    assert any("nbtune-summary" in h for h in htmls)  # the summary table
    assert any("nbtune-tree" in h for h in htmls)  # the layer tree
    pngs = outputs(nb, "image/png")
    assert pngs and any("nbtune-dashboard" in o["data"].get("text/html", "") for o in pngs)  # final loss curves
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    before, after = map(float, re.search(r"accuracy before ([\d.]+) after ([\d.]+)", text).groups())
    assert after > before and after >= 0.75
    assert "widgets" in nb.metadata  # widget state stored with the notebook


@pytest.fixture
def kernel():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def _run(kc, code: str, timeout: float = 180) -> str:
    """Execute code and return its stdout (raises if the cell fails)."""
    chunks = []
    reply = kc.execute_interactive(code, timeout=timeout,
                                   output_hook=lambda m: chunks.append(m["content"].get("text", ""))
                                   if m["msg_type"] == "stream" else None)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(chunks)


def _wait_for(kc, msg_id: str, marker: str, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and marker in msg["content"]["text"]:
            return msg["content"]["text"]
    raise AssertionError(f"{marker} never printed")


def _reply(kc, msg_id: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = kc.get_shell_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg
    raise AssertionError("no reply")


SETUP = """
import sys, time
sys.path.insert(0, {tests!r})
import nbtune
from training_helpers import toy_rows
from nbtune.ui import TrainingDashboard
from nbtune.core.training.events import FitStarted, StepEnded
s = nbtune.load({model!r}, task="text-classification", num_labels=2)
dash = TrainingDashboard(title="kernel test")
def pace(event, control):
    if isinstance(event, FitStarted):
        print("STOP_BUTTON", dash.widgets["stop"].model_id, flush=True)
    if isinstance(event, StepEnded):
        if event.run_step == 2:
            print("STEP_TWO", flush=True)
        time.sleep(0.05)  # slow steps, so the click lands mid-run
"""


def test_stop_button_stops_a_busy_cell(kernel, tiny_dirs):
    km, kc = kernel
    _run(kc, SETUP.format(tests=str(TESTS), model=str(tiny_dirs["bert"])))
    msg_id = kc.execute("run = s.train(toy_rows(1600), callbacks=[dash, pace], epochs=1, batch_size=8, log=False)")
    comm_id = _wait_for(kc, msg_id, "STOP_BUTTON").split()[1]
    _wait_for(kc, msg_id, "STEP_TWO")
    click = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}})
    kc.shell_channel.send(click)  # what the browser sends when the button is clicked
    assert _reply(kc, msg_id)["content"]["status"] == "ok"
    reason, steps, rows = _run(kc, "print(run.reason, '|', run.steps, '|', len(s.history.losses()))").strip().split(" | ")
    assert reason == "stopped by the Stop button"
    assert 2 <= int(steps) < 200 and int(rows) == int(steps)  # 200 steps were planned; the history is kept
    more = _run(kc, "print(s.train(toy_rows(16), epochs=1, batch_size=8, log=False).reason)")
    assert more.strip() == "completed"  # the session goes on training afterwards


def test_interrupt_kernel_is_a_clean_stop(kernel, tiny_dirs):
    km, kc = kernel
    _run(kc, SETUP.format(tests=str(TESTS), model=str(tiny_dirs["bert"])))
    msg_id = kc.execute("run = s.train(toy_rows(1600), callbacks=[dash, pace], epochs=1, batch_size=8, log=False)")
    _wait_for(kc, msg_id, "STEP_TWO")
    km.interrupt_kernel()
    assert _reply(kc, msg_id)["content"]["status"] == "ok"  # no traceback: train() returned
    out = _run(kc, "print(run.reason, '|', run.cancelled, '|', run.steps == len(s.history.losses()))")
    assert out.strip() == "interrupted | True | True"
    resumed = _run(kc, "r = s.train(toy_rows(1600), resume=True, epochs=1, batch_size=8, log=False); "
                       "print(r.reason, s.training.global_step)")
    assert resumed.split() == ["completed", "200"]


def test_python_api_train_shows_the_dashboard_in_a_kernel(kernel, tiny_dirs):
    """progress="auto": s.train() from plain Python in a notebook kernel gets the live dashboard, whose final
    static picture (PNG + HTML) replaces it when the run ends; outside a kernel the same call prints text."""
    km, kc = kernel
    _run(kc, f"import sys; sys.path.insert(0, {str(TESTS)!r})\nimport nbtune\nfrom training_helpers import toy_rows\n"
             f"s = nbtune.load({str(tiny_dirs['bert'])!r}, task='text-classification', num_labels=2)")
    shown = []
    reply = kc.execute_interactive("run = s.train(toy_rows(32), epochs=1, batch_size=8)", timeout=180,
                                   output_hook=lambda m: shown.append(m))
    assert reply["content"]["status"] == "ok"
    kinds = [m["msg_type"] for m in shown]
    assert "display_data" in kinds and "update_display_data" in kinds
    final = [m for m in shown if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert "nbtune-dashboard" in final["text/html"] and final["image/png"]
    assert not any(m["msg_type"] == "stream" and "step 4" in m["content"].get("text", "") for m in shown)

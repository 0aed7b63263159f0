"""Driving a real Jupyter kernel as a browser would: run code, wait for printed markers, click a widget button
while a cell is busy (a comm message on the shell channel). Shared by the notebook and hosted-runtime tests."""

from __future__ import annotations

import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def start_kernel(kernel_name: str = "python3", cwd: str | None = None):
    """A started kernel and its client; ``cwd`` away from the checkout makes ``import nbtune`` find the kernel
    environment's installed copy rather than this tree."""
    from jupyter_client.manager import start_new_kernel

    return start_new_kernel(kernel_name=kernel_name, startup_timeout=120, **({"cwd": cwd} if cwd else {}))


def stop_kernel(km, kc) -> None:
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run(kc, code: str, timeout: float = 180) -> str:
    """Execute code and return its stdout (raises if the cell fails)."""
    chunks = []
    reply = kc.execute_interactive(code, timeout=timeout,
                                   output_hook=lambda m: chunks.append(m["content"].get("text", ""))
                                   if m["msg_type"] == "stream" else None)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(chunks)


def wait_for(kc, msg_id: str, marker: str, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and marker in msg["content"]["text"]:
            return msg["content"]["text"]
    raise AssertionError(f"{marker} never printed")


def reply(kc, msg_id: str, timeout: float = 180) -> dict:
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


def click_stop_mid_run(kc, model_dir) -> float:
    """Train in the kernel, click the dashboard's Stop button after step 2, check that the run stopped with its
    history kept and that the session trains on; returns the seconds from the click to the cell's end."""
    run(kc, SETUP.format(tests=str(TESTS), model=str(model_dir)))
    msg_id = kc.execute("run = s.train(toy_rows(1600), callbacks=[dash, pace], epochs=1, batch_size=8, log=False)")
    comm_id = wait_for(kc, msg_id, "STOP_BUTTON").split()[1]
    wait_for(kc, msg_id, "STEP_TWO")
    click = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}})
    clicked = time.monotonic()
    kc.shell_channel.send(click)  # what the browser sends when the button is clicked
    assert reply(kc, msg_id)["content"]["status"] == "ok"
    seconds = time.monotonic() - clicked
    reason, steps, rows = run(kc, "print(run.reason, '|', run.steps, '|', len(s.history.losses()))").strip().split(" | ")
    assert reason == "stopped by the Stop button"
    assert 2 <= int(steps) < 200 and int(rows) == int(steps)  # 200 steps were planned; the history is kept
    more = run(kc, "print(s.train(toy_rows(16), epochs=1, batch_size=8, log=False).reason)")
    assert more.strip() == "completed"  # the session goes on training afterwards
    return seconds

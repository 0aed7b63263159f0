"""SIGINT and SIGTERM stop ``nbtune run`` and ``nbtune launch`` cleanly, with a checkpoint of the step they stopped
at, however the process was started: these are started as a shell starts a background job (SIGINT ignored), and
each test checks that the process will run a handler for the signal before sending it. ``--resume`` then reaches
the uninterrupted run's losses and weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import catches, cli
from safetensors.torch import load_file

import nbtune

from training_helpers import toy_rows

pytestmark = pytest.mark.slow

TRAIN = {"epochs": 40, "lr": 1e-3, "batch_size": 8, "seed": 3, "save_every": 50, "keep_checkpoints": 10}  # 320 steps


def _as_a_background_job():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a non-interactive shell does for `cmd &`


@pytest.fixture(scope="module")
def recipe(quiet_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals")
    s = nbtune.load(quiet_bert, task="text-classification", num_labels=2)
    return s.export(folder / "recipe.yaml", data={"train": pd.DataFrame(toy_rows(64)),
                                                  "eval": pd.DataFrame(toy_rows(16, seed=1))}, train=TRAIN)


@pytest.fixture(scope="module")
def reference(recipe) -> Path:
    out = recipe.parent / "uninterrupted"
    cli("run", recipe, "--output", out, "--quiet")
    return out


@pytest.fixture(scope="module")
def reference_on_two(recipe) -> Path:
    """The uninterrupted run on two processes (its gradient all-reduce sums in another order than one process)."""
    out = recipe.parent / "uninterrupted-two"
    cli("launch", recipe, "--processes", "2", "--output", out)
    return out


def _losses(out: Path) -> list[float]:
    history = pd.read_json(out / "history.jsonl", lines=True)
    return history["loss"].dropna().tolist()


def _same_run(out: Path, reference: Path) -> None:
    assert _losses(out) == pytest.approx(_losses(reference), abs=1e-6)
    a, b = (load_file(str(folder / "model" / "model.safetensors")) for folder in (out, reference))
    assert a.keys() == b.keys() and max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def _started_in_the_background(args: list) -> subprocess.Popen:
    probe = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"],
                           preexec_fn=_as_a_background_job, capture_output=True, text=True)
    assert probe.stdout.strip() == "True"  # the start below really ignores SIGINT, as `cmd &` does
    return subprocess.Popen([sys.executable, "-m", "nbtune", *map(str, args)], preexec_fn=_as_a_background_job,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_mid_run(proc: subprocess.Popen, signum: int, checkpoints: Path) -> tuple[str, str]:
    """Wait until the run is under way (its first checkpoint is written) and the process has a handler for
    ``signum``, send it, and return the output."""
    pid = proc.pid
    deadline = time.time() + 300
    while not (checkpoints / "step-00000050").is_dir():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the run never got under way"
        time.sleep(0.01)
    assert catches(pid, signum), f"process {pid} would not run a handler for {signal.Signals(signum).name}"
    assert proc.poll() is None
    os.kill(pid, signum)
    return proc.communicate(timeout=300)


def _newest_step(checkpoints: Path) -> int:
    return max(int(p.name.split("-")[1]) for p in checkpoints.glob("step-*"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_nbtune_run_with_a_checkpoint_and_resume_completes_it(recipe, reference, tmp_path, signum):
    out = tmp_path / "cut"
    proc = _started_in_the_background(["run", recipe, "--output", out, "--quiet"])
    stdout, stderr = _signal_mid_run(proc, signum, out / "checkpoints")
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert f"{name} received: stopping at the end of this step" in stderr and "Traceback" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reason"] == f"stopped by {name}"
    stopped = _newest_step(out / "checkpoints")
    assert 50 < stopped < 320 and len(_losses(out)) == stopped  # the checkpoint is the step it stopped at
    assert f"nbtune run {recipe} --resume" in stdout
    before = metrics["before"]
    cli("run", recipe, "--output", out, "--resume", "--quiet")
    _same_run(out, reference)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["before"] == before and metrics["global_step"] == 320  # measured once, by the first run
    if signum == signal.SIGINT:  # resuming a finished run: nothing trained or evaluated again
        history = (out / "history.jsonl").read_text()
        cli("run", recipe, "--output", out, "--resume", "--quiet")
        again = json.loads((out / "metrics.json").read_text())
        assert again["steps"] == 0 and again["after"] == metrics["after"]
        assert (out / "history.jsonl").read_text() == history


def test_a_signal_to_nbtune_launch_stops_every_process_at_one_checkpoint(recipe, reference_on_two, tmp_path):
    out = tmp_path / "two"
    proc = _started_in_the_background(["launch", recipe, "--processes", "2", "--output", out])
    stdout, stderr = _signal_mid_run(proc, signal.SIGINT, out / "checkpoints")
    assert proc.returncode != 0 and "stopping at the end of this step" in stderr, stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reason"] == "stopped by SIGINT", (metrics, stderr[-3000:])
    stopped = _newest_step(out / "checkpoints")
    assert 50 < stopped < 320 and len(_losses(out)) == stopped
    cli("launch", recipe, "--processes", "2", "--output", out, "--resume")
    _same_run(out, reference_on_two)

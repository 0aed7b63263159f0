"""A step is atomic: real SIGINTs at random moments, exceptions at every stage of a step, and SIGKILL of a process
writing checkpoints all leave a session (or a checkpoint) that resumes to the uninterrupted run's losses and weights.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

import nbtune

from training_helpers import toy_rows

DATA = toy_rows(48)
SETTINGS = dict(epochs=2, batch_size=8, lr=1e-3, seed=11, log=False, max_length=16)  # 12 steps, dropout on


def _load(tiny_dirs):
    torch.manual_seed(5)  # the new head's initialisation (the same in every trial)
    return nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)


def _weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def reference(tiny_dirs):
    _load(tiny_dirs).train(DATA, **SETTINGS)  # warm-up: the timed run below is what the trials take
    s = _load(tiny_dirs)
    started = time.perf_counter()
    s.train(DATA, **SETTINGS)
    return s.history.losses(), _weights(s.model), time.perf_counter() - started


def _timed_run(tiny_dirs) -> float:
    s = _load(tiny_dirs)
    started = time.perf_counter()
    s.train(DATA, **SETTINGS)
    return time.perf_counter() - started


def _assert_same_run(s, reference):
    losses, weights, _ = reference
    assert s.history.losses() == pytest.approx(losses, abs=1e-6)
    now = _weights(s.model)
    assert all(torch.allclose(now[n], weights[n], atol=1e-6) for n in weights)


def _consistent(s) -> None:
    """History, step counter and position describe the same completed step."""
    state = s.training
    assert len(state.history.losses()) == state.global_step
    if state.position is not None:
        assert state.position.run_step == state.global_step


def _finished(s) -> bool:
    position = s.training.position
    return position is not None and position.finished


class _InterruptsInsideTrain:
    """SIGINT handler: a KeyboardInterrupt, as Python's own, wherever it lands inside ``Session.train`` (nbtune,
    torch, anything it calls); counted and ignored when it lands in this test's own bookkeeping."""

    def __init__(self):
        self.raised = self.ignored = 0

    def __call__(self, signum, frame):
        while frame is not None:
            if frame.f_code.co_name == "train" and frame.f_code.co_filename.endswith("session.py"):
                self.raised += 1
                raise KeyboardInterrupt
            frame = frame.f_back
        self.ignored += 1


def _train_to_the_end(s, attempts: int = 30):
    for _ in range(attempts):
        if _finished(s):
            return
        try:
            s.train(DATA, resume=True if s.training.position is not None else None, **SETTINGS)
        except KeyboardInterrupt:  # landed before the run's loop started or after it ended
            pass
        _consistent(s)
    raise AssertionError("the run did not complete")


def _signals(main: int, session, first_after: int, delays: list[float]) -> threading.Thread:
    """A thread that sends SIGINTs to the main thread ``delays`` seconds after the session completes step
    ``first_after`` (0: at once)."""

    def fire():
        while session.training.global_step < first_after:
            time.sleep(0.001)
        start = time.perf_counter()
        for delay in delays:
            time.sleep(max(0.0, delay - (time.perf_counter() - start)))
            signal.pthread_kill(main, signal.SIGINT)

    return threading.Thread(target=fire, daemon=True)


def test_real_sigints_at_random_moments_resume_to_the_uninterrupted_run(tiny_dirs, reference):
    rng = random.Random(2024)
    handler = _InterruptsInsideTrain()
    previous = signal.signal(signal.SIGINT, handler)
    main = threading.main_thread().ident
    steps = len(reference[0])
    assert signal.getsignal(signal.SIGINT) is handler  # the signals below reach this handler
    resumed = cut = 0
    try:
        for trial in range(24):
            if trial % 6 == 0:  # the run's length now (the machine may be busier than when the fixture ran)
                duration = _timed_run(tiny_dirs)
            s = _load(tiny_dirs)
            # Most trials send the first signal at a random instant of a random step with two or more steps after it,
            # so it cuts the run mid-way however fast or busy the machine is; the other signals, and every fourth
            # trial's all, come at random instants of the whole call (set-up and wrap-up must be safe too).
            anchored = trial % 4 != 3
            first_after = rng.randrange(1, steps - 2) if anchored else 0
            delays = [rng.uniform(0, duration / steps / 2)] if anchored else []
            delays += sorted(rng.uniform(0, duration) for _ in range(trial % 3 + (not anchored)))
            timer = _signals(main, s, first_after, delays)
            timer.start()
            _train_to_the_end(s)
            timer.join()
            time.sleep(0.01)
            _train_to_the_end(s)  # a signal sent near the end may have cut the run after all
            resumed += s.training.runs > 1
            cut += anchored
            _assert_same_run(s, reference)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"24 trials: {handler.raised} SIGINTs inside train(), {handler.ignored} elsewhere, {resumed} runs resumed")
    # an anchored signal lands inside train() while steps remain: each of those runs was cut and resumed
    assert handler.raised >= cut and resumed >= cut, (handler.raised, handler.ignored, resumed, cut)


class _Injected(RuntimeError):
    pass


def _inject(monkeypatch, cls, method, call, after: bool):
    """Make ``cls.method`` raise on its ``call``-th call: before doing its work, or after it."""
    original = getattr(cls, method)
    count = {"n": 0}

    def wrapper(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == call and not after:
            raise _Injected(f"{method} #{call}")
        result = original(self, *args, **kwargs)
        if count["n"] == call and after:
            raise _Injected(f"after {method} #{call}")
        return result

    monkeypatch.setattr(cls, method, wrapper)


@pytest.mark.parametrize("stage", ["forward", "before update", "after update", "scheduler"])
def test_an_exception_at_any_stage_of_a_step_leaves_a_completed_step(tiny_dirs, reference, monkeypatch, stage):
    s = _load(tiny_dirs)
    with monkeypatch.context() as patch:
        if stage == "forward":
            calls = {"n": 0}

            def fail(module, args, output):
                calls["n"] += 1
                if calls["n"] == 5:
                    raise _Injected("forward #5")

            handle = s.model.classifier.register_forward_hook(fail)
        elif stage == "before update":
            _inject(patch, torch.optim.AdamW, "step", 5, after=False)
        elif stage == "after update":  # the weights changed, the step is not recorded yet
            _inject(patch, torch.optim.AdamW, "step", 5, after=True)
        else:
            _inject(patch, torch.optim.lr_scheduler.LambdaLR, "step", 5, after=False)
        with pytest.raises(_Injected):
            s.train(DATA, **SETTINGS)
    if stage == "forward":
        handle.remove()
    _consistent(s)
    assert s.training.global_step in (3, 4)  # step 5 never counts; a rollback may go back one more
    s.train(DATA, resume=True, **SETTINGS)
    _assert_same_run(s, reference)


_CHILD = textwrap.dedent("""
    import sys, torch, nbtune
    sys.path.insert(0, {tests!r})
    from training_helpers import toy_rows
    torch.manual_seed(5)
    s = nbtune.load({model!r}, task="text-classification", num_labels=2)
    settings = dict(epochs=2, batch_size=8, lr=1e-3, seed=11, log=False, max_length=16)
    resume = sys.argv[1] if len(sys.argv) > 1 else None
    print("ready", flush=True)
    s.train(toy_rows(48), checkpoint_dir={ckpt!r}, save_every=1, keep_checkpoints=2, resume=resume, **settings)
    torch.save({{n: p.detach() for n, p in s.model.named_parameters()}}, {out!r})
""")


def test_sigkill_while_writing_checkpoints_resumes_in_a_new_process(tiny_dirs, reference, tmp_path):
    rng = random.Random(7)
    cut = 0
    for trial in range(3):
        ckpt, out = tmp_path / f"ck{trial}", tmp_path / f"w{trial}.pt"
        script = tmp_path / f"child{trial}.py"
        script.write_text(_CHILD.format(tests=str(Path(__file__).parent), model=str(tiny_dirs["bert"]),
                                        ckpt=str(ckpt), out=str(out)))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True)
        assert child.stdout.readline().strip() == "ready"
        while child.poll() is None and not any(ckpt.glob("step-*")):  # the run is under way: kill it within it
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, reference[2] / 3))
        child.kill()
        child.wait()
        if out.exists():  # finished before the kill: nothing to test in this trial
            continue
        cut += 1
        done = subprocess.run([sys.executable, str(script), str(ckpt)] if any(ckpt.glob("step-*"))
                              else [sys.executable, str(script)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        weights = torch.load(out)
        assert all(torch.allclose(weights[n], reference[1][n], atol=1e-6) for n in reference[1])
    assert cut >= 2

"""Callbacks: History, EarlyStopping, ConsoleLogger, NanGuard. Each listens to events and may set Control flags.

A callback subclasses ``Callback`` and overrides any of its documented hooks; each receives ``(event, control)``.
A plain function ``f(event, control)`` works too. A method named ``on_...`` that is not a hook is an error when the
callback is given to ``train`` (a misspelt hook would otherwise never run).
"""

from __future__ import annotations

import math
import re
import sys
import time
from typing import Any

from nbtune.core.common.errors import CallbackError, close_matches
from nbtune.core.training.events import CheckpointSaved, Control, EvalEnded, FitEnded, FitStarted, Outcome, StepEnded
from nbtune.render.format import rate_text


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


EVENT_TYPES = (FitStarted, StepEnded, EvalEnded, CheckpointSaved, FitEnded)
HOOKS = tuple(f"on_{_snake(t.__name__)}" for t in EVENT_TYPES)


class Callback:
    """Base class of training callbacks: override the hooks you need; the others do nothing.

    Hooks run in the training process between steps and may set ``control`` flags (``control.stop(reason)``,
    ``control.should_evaluate``, ``control.should_save``). ``state_dict``/``load_state_dict`` carry what a callback
    must remember across an interrupt or a checkpoint (early stopping's patience, for one).
    """

    def on_fit_started(self, event: FitStarted, control: Control) -> None:
        """Before the first step of a run (also of a resumed one: ``event.start_step`` > 0)."""

    def on_step_ended(self, event: StepEnded, control: Control) -> None:
        """After each optimizer step, once weights, optimizer, scheduler and counters describe that step."""

    def on_eval_ended(self, event: EvalEnded, control: Control) -> None:
        """After each evaluation, with its metrics."""

    def on_checkpoint_saved(self, event: CheckpointSaved, control: Control) -> None:
        """After a checkpoint is complete on disk."""

    def on_fit_ended(self, event: FitEnded, control: Control) -> None:
        """Last, always: ``event.outcome`` says how the run ended (``event.error`` holds an exception)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def __call__(self, event: Any, control: Control) -> None:
        getattr(self, f"on_{_snake(type(event).__name__)}", lambda e, c: None)(event, control)


def check_callback(callback: Any) -> None:
    """Refuse a callback with an ``on_...`` method that is no hook (``on_step_end`` for ``on_step_ended``)."""
    if not callable(callback):
        raise CallbackError(f"A callback is a Callback subclass or a function f(event, control); got {callback!r}.")
    wrong = [n for n in dir(type(callback)) if n.startswith("on_") and n not in HOOKS]
    if wrong:
        name = wrong[0]
        hint = close_matches(name, HOOKS, n=1)
        raise CallbackError(f"{type(callback).__name__}.{name} is not a training hook, so it would never run"
                            + (f" (did you mean {hint[0]}?)" if hint else "") + f". Hooks: {', '.join(HOOKS)}.")


class History(Callback):
    """Every step's loss and learning rate and every evaluation, kept across runs of a session."""

    def __init__(self, rows: list[dict[str, Any]] | None = None):
        self.rows: list[dict[str, Any]] = list(rows or [])

    def on_step_ended(self, e: StepEnded, control: Control) -> None:
        self.rows.append({"step": e.step, "epoch": e.epoch, "loss": e.loss, "lr": e.lr, "grad_norm": e.grad_norm,
                          "examples_per_s": e.examples_per_s, "seconds": e.elapsed, **e.metrics})

    def on_eval_ended(self, e: EvalEnded, control: Control) -> None:
        self.rows.append({"step": e.step, "epoch": e.epoch, **{f"eval_{k}": v for k, v in e.metrics.items()}})

    def losses(self) -> list[float]:
        return [r["loss"] for r in self.rows if "loss" in r]

    def evals(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if any(k.startswith("eval_") for k in r)]

    def truncate(self, step: int) -> None:
        """Forget rows after ``step`` (used when resuming from an earlier checkpoint)."""
        self.rows = [r for r in self.rows if r["step"] <= step]

    def to_pandas(self):
        """One row per training step and per evaluation: step, epoch, loss, lr, eval metrics, seconds."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class EarlyStopping(Callback):
    """Stop when ``metric`` has not improved for ``patience`` evaluations (the count survives interrupts and
    checkpoints through ``state_dict``)."""

    def __init__(self, metric: str, patience: int, mode: str = "max"):
        self.metric, self.patience, self.mode = metric, patience, mode
        self.best: float | None = None
        self.best_step: int | None = None  # the loop keeps that step's weights and restores them at the end
        self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "best": self.best, "bad": self.bad, "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("metric") == self.metric:
            self.best, self.bad, self.best_step = state.get("best"), int(state.get("bad", 0)), state.get("best_step")

    def on_eval_ended(self, e: EvalEnded, control: Control) -> None:
        if self.metric not in e.metrics:
            return
        value = e.metrics[self.metric]
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.bad, self.best_step = value, 0, e.step
            return
        self.bad += 1
        if self.bad >= self.patience:
            control.stop("early stopping", Outcome.EARLY_STOPPED)
            control.messages.append(f"early stopping: {self.metric} has not improved for {self.patience} "
                                    f"evaluations (best {self.best:.4f})")


class ConsoleLogger(Callback):
    """Plain text progress for scripts and terminals: a line every ``every`` seconds and at the end."""

    def __init__(self, every: float = 10.0, stream=None):
        self.every, self.stream = every, stream or sys.stdout
        self._last = 0.0
        self._start_step = 0  # a resumed run's first step: seconds a step count this call's steps only

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_fit_started(self, e: FitStarted, control: Control) -> None:
        self._last = time.monotonic()
        self._start_step = e.start_step
        resumed = f" from step {e.start_step}" if e.start_step else ""
        self._print(f"training {e.total_steps} steps{resumed} on {e.device} ({e.precision}), {e.examples} examples, "
                    f"{e.trainable:,} of {e.total_params:,} params trainable, lr {e.config.get('lr') or 0:g}")

    def on_step_ended(self, e: StepEnded, control: Control) -> None:
        now = time.monotonic()
        if now - self._last >= self.every or e.run_step == e.total_steps:
            self._last = now
            per_step = e.elapsed / max(e.run_step - self._start_step, 1)
            self._print(f"step {e.step} ({e.run_step}/{e.total_steps}) epoch {e.epoch:.2f} loss {e.loss:.4f} "
                        f"lr {e.lr:.2e} {rate_text(e.examples_per_s, e.tokens_per_s, per_step)}")

    def on_eval_ended(self, e: EvalEnded, control: Control) -> None:
        self._print(f"eval at step {e.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in e.metrics.items()))

    def on_fit_ended(self, e: FitEnded, control: Control) -> None:
        if e.outcome is Outcome.INTERRUPTED:
            self._print(f"interrupted at step {e.step}; weights and history kept, train(..., resume=True) goes on")
        elif e.outcome in (Outcome.ERROR, Outcome.OUT_OF_MEMORY):
            self._print(f"stopped by an error at step {e.step}: {e.error}; weights are those of step {e.step}")
        else:
            self._print(f"done: {e.reason} at step {e.step} after {e.elapsed:.1f}s")


def is_finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


class NanGuard(Callback):
    """Stop the run at the first non-finite loss or gradient, naming the step and the likely causes.

    The loop never applies an update from a non-finite loss or gradient, so the weights stay those of the last
    good step; this callback turns that into a stop with an explanation.
    """

    def __init__(self):
        self.message: str | None = None

    def on_step_ended(self, e: StepEnded, control: Control) -> None:
        if is_finite(e.loss) and is_finite(e.grad_norm):
            return
        what = "loss" if not is_finite(e.loss) else "gradient norm"
        self.message = (
            f"The {what} became {e.loss if what == 'loss' else e.grad_norm} at step {e.step}; the update was not applied "
            f"and the weights are those of step {e.step - 1}. Likely causes: a learning rate too high for this model "
            f"(now {e.lr:.2e}; try 10x lower or add warmup), fp16 overflow (use bf16 or precision='no'), "
            "bad inputs (empty texts, labels out of range), or no gradient clipping (max_grad_norm=1.0)."
        )
        control.stop("non-finite loss", Outcome.NON_FINITE)
        control.messages.append(self.message)


class EveryNSteps(Callback):
    """Ask the loop for something every ``every`` optimizer steps: ``request`` is a Control flag
    (``"should_save"`` for checkpoints, ``"should_evaluate"`` for evaluation)."""

    def __init__(self, every: int, request: str):
        if not hasattr(Control(), request):
            raise ValueError(f"Control has no flag {request!r}")
        self.every, self.request = every, request

    def on_step_ended(self, e: StepEnded, control: Control) -> None:
        if e.step % self.every == 0:
            setattr(control, self.request, True)

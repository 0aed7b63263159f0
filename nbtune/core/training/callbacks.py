"""Callbacks: History, EarlyStopping, ConsoleLogger. Each listens to events and may set Control flags.

A callback implements any of ``on_fit_started``, ``on_step_ended``, ``on_eval_ended``, ``on_checkpoint_saved``,
``on_fit_ended``, ``on_fit_cancelled``; each receives ``(event, control)``.
"""

from __future__ import annotations

import math
import re
import sys
import time
from typing import Any

from .events import Control, EvalEnded, FitCancelled, FitEnded, FitStarted, StepEnded


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Callback:
    """Base class: routes each event to ``on_<event_name>`` when the subclass defines it."""

    def __call__(self, event: Any, control: Control) -> None:
        handler = getattr(self, f"on_{_snake(type(event).__name__)}", None)
        if handler is not None:
            handler(event, control)


class History(Callback):
    """Every step's loss and learning rate and every evaluation, kept across runs of a session."""

    def __init__(self, rows: list[dict[str, Any]] | None = None):
        self.rows: list[dict[str, Any]] = list(rows or [])

    def on_step_ended(self, e: StepEnded, control: Control) -> None:
        self.rows.append({"step": e.step, "epoch": e.epoch, "loss": e.loss, "lr": e.lr, "grad_norm": e.grad_norm,
                          "examples_per_s": e.examples_per_s, "seconds": e.elapsed})

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
    """Stop when ``metric`` has not improved for ``patience`` evaluations."""

    def __init__(self, metric: str, patience: int, mode: str = "max"):
        self.metric, self.patience, self.mode = metric, patience, mode
        self.best: float | None = None
        self.bad = 0

    def on_eval_ended(self, e: EvalEnded, control: Control) -> None:
        if self.metric not in e.metrics:
            return
        value = e.metrics[self.metric]
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            control.stop("early stopping")
            control.messages.append(f"early stopping: {self.metric} has not improved for {self.patience} "
                                    f"evaluations (best {self.best:.4f})")


class ConsoleLogger(Callback):
    """Plain text progress for scripts and terminals: a line every ``every`` seconds and at the end."""

    def __init__(self, every: float = 10.0, stream=None):
        self.every, self.stream = every, stream or sys.stdout
        self._last = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_fit_started(self, e: FitStarted, control: Control) -> None:
        self._last = time.monotonic()
        resumed = f" from step {e.start_step}" if e.start_step else ""
        self._print(f"training {e.total_steps} steps{resumed} on {e.device} ({e.precision}), {e.examples} examples, "
                    f"{e.trainable:,} of {e.total_params:,} params trainable")

    def on_step_ended(self, e: StepEnded, control: Control) -> None:
        now = time.monotonic()
        if now - self._last >= self.every or e.run_step == e.total_steps:
            self._last = now
            self._print(f"step {e.step} ({e.run_step}/{e.total_steps}) epoch {e.epoch:.2f} loss {e.loss:.4f} "
                        f"lr {e.lr:.2e} {e.examples_per_s:.1f} ex/s")

    def on_eval_ended(self, e: EvalEnded, control: Control) -> None:
        self._print(f"eval at step {e.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in e.metrics.items()))

    def on_fit_ended(self, e: FitEnded, control: Control) -> None:
        self._print(f"done: {e.reason} at step {e.step} after {e.elapsed:.1f}s")

    def on_fit_cancelled(self, e: FitCancelled, control: Control) -> None:
        self._print(f"cancelled at step {e.step} ({e.reason}); weights and history kept, call train() again to go on")


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
        control.stop("non-finite loss")
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

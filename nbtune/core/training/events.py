"""What the training loop tells its listeners, and how listeners talk back.

Events are read-only records; a callback that wants something (stop, evaluate now, save now) sets a flag
on ``Control`` and the loop acts on it at the next step boundary. Display code only ever listens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    """How a run ended. Every run ends with exactly one ``FitEnded`` carrying one of these."""

    COMPLETED = "completed"
    STOPPED = "stopped"  # a callback asked (the dashboard's Stop button, a user callback)
    EARLY_STOPPED = "early stopping"
    INTERRUPTED = "interrupted"  # KeyboardInterrupt: Interrupt Kernel, Ctrl-C
    NON_FINITE = "non-finite loss"
    OUT_OF_MEMORY = "out of memory"
    ERROR = "error"  # any other exception; FitEnded.error holds it and train() re-raises it

    @property
    def finished(self) -> bool:
        """The run reached its end (nothing left to resume)."""
        return self in (Outcome.COMPLETED, Outcome.EARLY_STOPPED)


@dataclass(frozen=True)
class FitStarted:
    run: int
    total_steps: int
    steps_per_epoch: int
    epochs: float
    start_step: int  # > 0 when resuming or continuing
    examples: int
    trainable: int
    total_params: int
    device: str
    precision: str
    config: dict[str, Any]
    history: tuple[dict[str, Any], ...] = ()  # every row so far (earlier runs, a restored checkpoint): views redraw it


@dataclass(frozen=True)
class StepEnded:
    step: int  # global optimizer step, counted across runs of the session
    run_step: int  # step within this run, 1-based
    total_steps: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float | None
    examples_per_s: float
    tokens_per_s: float
    elapsed: float
    metrics: dict[str, float] = field(default_factory=dict)  # the task's per-step metrics (TaskHandler.step_metrics)


@dataclass(frozen=True)
class EvalEnded:
    step: int
    epoch: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class FitEnded:
    """The last event of every run, whatever ended it (emitted from a ``finally``)."""

    step: int
    outcome: Outcome
    reason: str  # the outcome in words, e.g. "stopped by the Stop button"
    metrics: dict[str, float]
    elapsed: float
    error: BaseException | None = None  # the exception that ended the run, for ERROR / OUT_OF_MEMORY


@dataclass
class Control:
    """Requests from callbacks, honoured at the next step boundary."""

    should_stop: bool = False
    should_evaluate: bool = False
    should_save: bool = False
    stop_reason: str = "requested"
    stop_outcome: Outcome = Outcome.STOPPED
    messages: list[str] = field(default_factory=list)

    def stop(self, reason: str = "requested", outcome: Outcome = Outcome.STOPPED) -> None:
        """End the run after this step; ``reason`` is what the result and the views say."""
        self.should_stop = True
        self.stop_reason = reason
        self.stop_outcome = Outcome(outcome)

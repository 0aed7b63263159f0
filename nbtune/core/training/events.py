"""What the training loop tells its listeners, and how listeners talk back.

Events are read-only records; a callback that wants something (stop, evaluate now, save now) sets a flag
on ``Control`` and the loop acts on it at the next step boundary. Display code only ever listens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    step: int
    reason: str  # "completed", "early stopping", "requested", "non-finite loss"
    metrics: dict[str, float]
    elapsed: float


@dataclass(frozen=True)
class FitCancelled:
    step: int
    reason: str
    elapsed: float


@dataclass
class Control:
    """Requests from callbacks, honoured at the next step boundary."""

    should_stop: bool = False
    should_evaluate: bool = False
    should_save: bool = False
    stop_reason: str = "requested"
    messages: list[str] = field(default_factory=list)

    def stop(self, reason: str = "requested") -> None:
        self.should_stop = True
        self.stop_reason = reason

"""``RunResult``: what ``Session.train`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbtune.core.training.callbacks import History
from nbtune.core.training.events import Outcome


@dataclass
class RunResult:
    """History, final metrics and outcome of one training run. ``repr`` and HTML summarise it."""

    history: History
    metrics: dict[str, float]
    reason: str  # the outcome in words ("completed", "stopped by the Stop button", "interrupted", ...)
    steps: int  # optimizer steps done in this run
    global_step: int
    seconds: float
    examples_per_s: float
    messages: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome = Outcome.COMPLETED
    run_folder: str | None = None  # where the run's settings, checkpoints, history and weights are
    session: Any = field(default=None, repr=False)  # set by nbtune.resume: the session it rebuilt
    tokens_per_s: float = 0.0  # input tokens (non-padding) a second, over the whole run

    @property
    def cancelled(self) -> bool:
        """Interrupted, or stopped by a non-finite loss: ``train(resume=True)`` continues it."""
        return self.outcome in (Outcome.INTERRUPTED, Outcome.NON_FINITE)

    @property
    def losses(self) -> list[float]:
        return self.history.losses()

    def __repr__(self) -> str:
        from nbtune.render.training import run_text

        return run_text(self)

    def _repr_html_(self) -> str:
        from nbtune.render.training import run_html

        return run_html(self)

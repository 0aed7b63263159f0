"""Task name -> handler (preprocess, collate, metrics). New tasks register here."""

from __future__ import annotations

from ..errors import TaskError
from .base import TaskHandler


def handler_for(session) -> TaskHandler:
    """The handler for the session's task (classification turns into regression with one output)."""
    from .causal_lm import CausalLMTask
    from .classification import ClassificationTask

    task = session.task
    if task == "text-classification":
        config = getattr(session.model, "config", None)
        return ClassificationTask(regression=getattr(config, "num_labels", 2) == 1)
    if task == "causal-lm":
        return CausalLMTask()
    raise TaskError(
        f"Training for task {task!r} is not available yet in this version; text-classification and causal-lm are. "
        "Load the model with one of those tasks."
    )

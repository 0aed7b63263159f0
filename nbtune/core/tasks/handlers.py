"""The handler for a session's task, from the task registry."""

from __future__ import annotations

from nbtune.core.common.errors import TaskError
from nbtune.core.tasks.base import TaskHandler
from nbtune.core.tasks.module import ModuleTask
from nbtune.core.tasks.registry import get_task, task_names


def handler_for(session) -> TaskHandler:
    """The task's handler for this session; a plain ``nn.Module`` without a task trains on (input, label) pairs."""
    if session.task is not None:
        return get_task(session.task).for_session(session)
    if getattr(session.model, "config", None) is None:
        return ModuleTask()
    raise TaskError(
        f"This session has no task, so nbtune does not know how to read data for it. Load the model with task=... "
        f"({', '.join(task_names())})."
    )

"""Checks and pieces that several method files share."""

from __future__ import annotations

from typing import Any

from torch import nn

from nbtune.core.adapters.registry import Field
from nbtune.core.common.errors import AdapterError
from nbtune.core.model.architecture import embeddings_of, head_module_names, unwrap
from nbtune.core.tasks import all_tasks, get_task

TARGETS = Field("targets", "targets", "qkv", "'qkv', 'all-linear', short names ['query', 'value'] or selectors")


def positive_int(value, what: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AdapterError(f"{what} must be a positive integer; got {value!r}. {fix}")
    return value


def probability(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise AdapterError(f"{what} must be in [0, 1); got {value!r}.")
    return float(value)


def modules_to_save(model: nn.Module, task: str | None) -> list[str] | None:
    """The head, relative to the unwrapped model, when the task trains a fresh head."""
    if task is not None and not get_task(task).new_head:  # a plain module (no task) keeps its head trainable too
        return None
    inner, _ = unwrap(model)
    heads = head_module_names(inner)
    return heads or None


def task_type(task: str | None, method: str, soft_prompt: bool = False) -> str | None:
    found = get_task(task).peft_task_type if task else None
    if found is None and soft_prompt:
        supported = ", ".join(t.name for t in all_tasks() if t.peft_task_type)
        raise AdapterError(
            f"{method} needs a task peft knows how to prepend virtual tokens for ({supported}); this session's "
            f"task is {task!r}. Load the model with one of those tasks, or use LoRA/IA3."
        )
    return found


def require_embeddings(model: nn.Module, method: str) -> nn.Module:
    inner, _ = unwrap(model)
    emb = embeddings_of(inner)
    if not isinstance(emb, nn.Embedding):
        raise AdapterError(
            f"{method} prepends trainable vectors to the input embeddings, and {type(inner).__name__} has no "
            "input embedding layer (get_input_embeddings). Use LoRA or IA3 on this model instead."
        )
    return emb


def targets_setting(targets: Any) -> Any:
    """Targets as they are recorded (and exported): a string stays, a list becomes a plain list."""
    return targets if isinstance(targets, str) or targets is None else list(targets)

"""Tasks: one file per task (``classification.py``, ``causal_lm.py``...), each registering its class
(``registry.py``), plus the label helpers that loading and head replacement share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtune.core.common.errors import TaskError
from nbtune.core.tasks.registry import (
    all_tasks,
    auto_class,
    data_roles,
    get_task,
    is_labelled,
    register_task,
    supported_tasks,
    task_for_architecture,
    task_from_class_name,
    task_names,
)

if TYPE_CHECKING:
    from nbtune.core.tasks.base import TaskHandler


def check_labels(num_labels: int | None, labels, error: type[Exception] = TaskError) -> tuple[int | None, list[str] | None]:
    """Validated ``(num_labels, label names)``: names set the count; a count alone must be a positive integer.

    ``error`` is the exception class the caller reports with (loading and head replacement differ)."""
    if labels is not None:
        labels = [str(x) for x in labels]
        if not labels or len(set(labels)) != len(labels):
            raise error(f"labels must be a non-empty list of distinct names; got {labels}.")
        if num_labels is not None and num_labels != len(labels):
            raise error(f"num_labels={num_labels} but {len(labels)} label names were given; pass one of them.")
        num_labels = len(labels)
    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1):
        raise error(f"num_labels must be a positive integer (1 for regression); got {num_labels!r}.")
    return num_labels, labels


def label_config(task: str, num_labels: int, names: list[str] | None = None) -> dict:
    """Config values for a head of ``num_labels`` outputs: label names both ways, and the problem type the task
    gives such a head (``TaskHandler.problem_type``)."""
    names = names or [f"LABEL_{i}" for i in range(num_labels)]
    out = {"num_labels": num_labels, "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
    problem = get_task(task).problem_type(num_labels)
    if problem is not None:
        out["problem_type"] = problem
    return out


def resolve_task(task: str | None, config, location: str, kind: str) -> type[TaskHandler]:
    """The task class for a model config: ``task`` checked against the heads transformers has for it, or inferred
    from the config's architecture names (GGUF files: their language-model kind)."""
    if task is None:
        for arch in getattr(config, "architectures", None) or []:
            inferred = task_for_architecture(config, arch)
            if inferred:
                return get_task(inferred)
        if kind == "gguf":  # GGUF files hold language models and name no architecture class
            return get_task("seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal-lm")
        options = supported_tasks(config)
        raise TaskError(
            f"Cannot infer the task for {location}: its config names {config.architectures or 'no architecture'}. "
            f"Pass task=..., one of: {', '.join(options) or 'none (transformers has no head for this model)'}."
        )
    spec = get_task(task)
    try:
        auto_class(spec)._model_mapping[type(config)]
    except KeyError:
        options = supported_tasks(config)
        raise TaskError(
            f"{type(config).__name__.replace('Config', '')} models have no {spec.name} head in transformers. "
            f"Tasks this architecture supports: {', '.join(options) or 'none'}."
        ) from None
    return spec


def label_settings(spec: type[TaskHandler], num_labels: int | None, labels) -> dict[str, Any]:
    """Config overrides for the head size and label names."""
    if labels is None and num_labels is None:
        return {}
    if not spec.labelled:
        raise TaskError(f"num_labels/labels apply to classification tasks, not {spec.name}.")
    num_labels, labels = check_labels(num_labels, labels)
    return label_config(spec.name, num_labels, labels)


def has_default_names(id2label: dict) -> bool:
    """True while a head's labels are still the placeholders ``LABEL_i`` (named by no data yet)."""
    return all(str(v) == f"LABEL_{k}" for k, v in id2label.items())


__all__ = [
    "all_tasks", "auto_class", "check_labels", "data_roles", "get_task", "has_default_names", "is_labelled", "label_config",
    "label_settings", "resolve_task",
    "register_task", "supported_tasks", "task_for_architecture", "task_from_class_name", "task_names",
]

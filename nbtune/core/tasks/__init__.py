"""Tasks: one file per task (``classification.py``, ``causal_lm.py``...), each registering its class
(``registry.py``), plus the label helpers that loading and head replacement share."""

from __future__ import annotations

from ..errors import TaskError
from .registry import (  # the registry reads the task files of this package lazily
    all_tasks,
    auto_class,
    data_roles,
    get_task,
    is_labelled,
    register_task,
    supported_tasks,
    task_from_class_name,
    task_names,
)


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
    """Config values for a head of ``num_labels`` outputs: label names both ways, and the problem type."""
    names = names or [f"LABEL_{i}" for i in range(num_labels)]
    out = {"num_labels": num_labels, "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
    if task == "text-classification":
        out["problem_type"] = "regression" if num_labels == 1 else "single_label_classification"
    return out


def has_default_names(id2label: dict) -> bool:
    """True while a head's labels are still the placeholders ``LABEL_i`` (named by no data yet)."""
    return all(str(v) == f"LABEL_{k}" for k, v in id2label.items())


__all__ = [
    "all_tasks", "auto_class", "check_labels", "data_roles", "get_task", "has_default_names", "is_labelled", "label_config",
    "register_task", "supported_tasks", "task_from_class_name", "task_names",
]

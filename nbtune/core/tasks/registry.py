"""The task registry: each task is one class in its own file of this package, registered with ``@register_task``.

A task class carries everything about its task: names and aliases, the transformers auto class, whether it is
labelled and gets a new head, its peft task type, its data columns with their default names, and the hooks that
prepare, collate, score and predict (``base.TaskHandler``). Loading, adapters, recipes and the training loop read
it from here, so adding a task is adding a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtune.core.common.errors import TaskError, close_matches
from nbtune.core.common.plugins import Registry

if TYPE_CHECKING:
    from nbtune.core.tasks.base import TaskHandler

_TASKS = Registry("task", __name__.rpartition(".")[0], {"base", "registry", "handlers", "heads", "generation"})


def register_task(cls: type[TaskHandler]) -> type[TaskHandler]:
    """Class decorator: add a task class to the registry under its ``name``."""
    return _TASKS.register(cls)


def unregister_task(name: str) -> None:
    """Remove a task registered at run time (tests, experiments); the built-in ones stay."""
    _TASKS.unregister(name)


def all_tasks() -> list[type[TaskHandler]]:
    return sorted(_TASKS.all(), key=lambda t: (t.order, t.name))


def task_names() -> list[str]:
    return [t.name for t in all_tasks()]


def get_task(name: str) -> type[TaskHandler]:
    """The task class for ``name`` (aliases accepted: ``ner``, ``qa``, ``summarization``...), or a TaskError listing
    the known tasks."""
    key = str(name).strip().lower().replace("_", "-")
    for task in all_tasks():
        if key == task.name or key in task.aliases:
            return task
    names = task_names()
    hint = close_matches(key, names + [a for t in all_tasks() for a in t.aliases], n=1)
    raise TaskError(f"Unknown task {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f". Known tasks: {', '.join(names)}.")


def is_labelled(task: str | None) -> bool:
    """True for tasks whose head is sized to label names (text and token classification)."""
    return task is not None and get_task(task).labelled


def task_from_class_name(class_name: str) -> str | None:
    """Infer a task from a model class name such as ``BertForSequenceClassification`` (the longest matching class
    suffix wins: ``ForConditionalGeneration`` before ``LMHeadModel``)."""
    matches = [(len(suffix), task.name) for task in all_tasks() for suffix in task.class_suffixes
               if class_name.endswith(suffix)]
    return max(matches)[1] if matches else None


def task_for_architecture(config, architecture: str) -> str | None:
    """The task whose transformers auto class maps this config type to the class ``architecture`` (so
    ``WhisperForConditionalGeneration`` is speech-to-text, not text seq2seq, though the suffix is the same); where
    several tasks share the auto class (causal LM and preference tuning), the one claiming the class suffix wins.
    Classes transformers does not know (remote code) fall back to their name's suffix; None: no task trains it."""
    found = []
    for task in all_tasks():
        try:
            mapped = auto_class(task)._model_mapping[type(config)]
        except (KeyError, ValueError, TaskError, AttributeError):
            continue
        classes = mapped if isinstance(mapped, (tuple, list)) else (mapped,)
        if any(getattr(c, "__name__", None) == architecture for c in classes):
            found.append(task)
    if not found:
        import transformers

        # a class transformers has is one no registered task trains (a speech model, say): not guessed from its
        # name; only a class it does not know (remote code) is
        return None if hasattr(transformers, architecture) else task_from_class_name(architecture)
    claiming = [t for t in found if any(architecture.endswith(suffix) for suffix in t.class_suffixes)]
    return (claiming or found)[0].name


def auto_class(task: type[TaskHandler]):
    """The transformers auto class for a task (imported lazily: transformers is slow to import)."""
    import transformers

    if task.auto_class is None:
        raise TaskError(f"Task {task.name!r} has no transformers auto class; load a model object for it.")
    return getattr(transformers, task.auto_class)


def supported_tasks(config) -> list[str]:
    """Tasks for which transformers has a model class for this config type."""
    out = []
    for task in all_tasks():
        try:
            auto_class(task)._model_mapping[type(config)]
        except (KeyError, ValueError, TaskError):
            continue
        out.append(task.name)
    return out


def data_roles(task: str | None = None) -> list[str]:
    """Column roles a task reads (``text``, ``label``, ``tokens``, ``source``...); all tasks' when ``task`` is None."""
    tasks = [get_task(task)] if task else all_tasks()
    seen: dict[str, None] = {}
    for t in tasks:
        seen.update(dict.fromkeys(t.columns))
    return list(seen)

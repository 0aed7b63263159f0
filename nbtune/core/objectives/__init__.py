"""Objectives: what loss trains a task's model (``base.Objective``), one file each (``supervised.py``, ``dpo.py``,
``orpo.py``...), registered by name (``registry.py``)."""

from nbtune.core.objectives.base import BatchNeeds, NoSettings, Objective, ObjectiveOutput
from nbtune.core.objectives.registry import (
    all_objectives,
    get_objective,
    is_objective,
    objective_for,
    objective_names,
    objective_settings_names,
    register_objective,
    resolve_objective,
    task_and_objective,
    unregister_objective,
)

__all__ = [
    "BatchNeeds", "NoSettings", "Objective", "ObjectiveOutput", "all_objectives", "get_objective", "is_objective",
    "objective_for", "objective_names", "objective_settings_names", "register_objective", "resolve_objective", "task_and_objective",
    "unregister_objective",
]

"""The objective registry: each objective is one class in its own file of this package, registered with
``@register_objective``. Training, evaluation, recipes, magics and completion read it from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtune.core.common.errors import TaskError, TrainConfigError, close_matches
from nbtune.core.common.plugins import Registry
from nbtune.core.tasks import get_task

if TYPE_CHECKING:
    from nbtune.core.objectives.base import Objective

_OBJECTIVES = Registry("objective", __name__.rpartition(".")[0], {"base", "registry", "preference_metrics"})


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: add an objective class to the registry under its ``name``."""
    return _OBJECTIVES.register(cls)


def unregister_objective(name: str) -> None:
    """Remove an objective registered at run time (tests, experiments); the built-in ones stay."""
    _OBJECTIVES.unregister(name)


def all_objectives() -> list[type[Objective]]:
    return _OBJECTIVES.all()


def objective_names() -> list[str]:
    return _OBJECTIVES.names()


def get_objective(name: str) -> type[Objective]:
    """The objective class for ``name``, or a TrainConfigError listing the known ones."""
    key = str(name).strip().lower().replace("_", "-")
    for objective in all_objectives():
        if key == objective.name:
            return objective
    hint = close_matches(key, objective_names(), n=1)
    raise TrainConfigError(f"Unknown objective {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                           + f". Known objectives: {', '.join(objective_names())}.")


def is_objective(name: str | None) -> bool:
    return name is not None and str(name).strip().lower().replace("_", "-") in objective_names()


def objective_settings_names() -> dict[str, list[str]]:
    """Every objective's settings by objective (for completion, forms and error messages)."""
    return {o.name: o.setting_names() for o in all_objectives()}


def task_and_objective(name: str) -> tuple[str, str | None]:
    """A name given as ``task=``: a task (its own default objective), or an objective, which trains the task it
    is made for (``task="orpo"``: the preference task, trained with ORPO)."""
    if is_objective(name):
        objective = get_objective(name)
        if len(objective.tasks) != 1:
            raise TaskError(f"{objective.name} is an objective, not a task: pass the task (task=...) and "
                            f"objective={objective.name!r}.")
        return get_task(objective.tasks[0]).name, objective.name
    return get_task(name).name, None


def resolve_objective(task, cfg, named: str | None = None):
    """(objective class, its settings) for a run of ``task`` (a task class or handler): ``cfg.objective``, else
    ``named`` (the objective given as the session's task), else the task's default; ``cfg.objective_settings``
    checked against its settings class. Raises before anything is changed."""
    cls = get_objective(cfg.objective or named or task.default_objective)
    if cls.tasks and task.name not in cls.tasks:
        raise TrainConfigError(f"The {cls.name} objective trains {' or '.join(cls.tasks)} models; this session's "
                               f"task is {task.name}.")
    return cls, cls.make_settings(dict(cfg.objective_settings))


def objective_for(session, handler, cfg) -> Objective:
    """The objective instance a run of ``session`` trains with (see ``resolve_objective``). It lives on the
    session's training state, so what it keeps between runs (DPO's frozen reference) stays."""
    cls, settings = resolve_objective(handler, cfg, getattr(session, "objective", None))
    kept = session.training.objectives
    instance = kept.get(cls.name)
    if instance is None or type(instance) is not cls:
        instance = kept[cls.name] = cls(settings)
    instance.settings = settings
    return instance

"""Which live view a run gets: ``progress="auto" | "notebook" | "text" | "none"``.

The core knows views only as factories registered by name, so it imports no UI: the package registers the notebook
dashboard (lazily, see ``nbtune/__init__.py``), and "auto" picks it inside a notebook kernel and text lines
elsewhere. The Python API, ``%nbtune train`` and ``%%finetune`` all choose their view here.
"""

from __future__ import annotations

from typing import Any, Callable

from nbtune.core.common.errors import TrainConfigError

PROGRESS = ("auto", "notebook", "text", "none")
_VIEWS: dict[str, tuple[Callable[[str], Any], Callable[[], bool]]] = {}


def register_view(name: str, factory: Callable[[str], Any], available: Callable[[], bool] = lambda: True) -> None:
    """``factory(title)`` makes a training listener; ``available()`` says whether it can show here and now."""
    _VIEWS[name] = (factory, available)


def resolve_progress(progress: str) -> str:
    """``"auto"`` -> ``"notebook"`` where a notebook view is registered and available, else ``"text"``."""
    if progress not in PROGRESS:
        raise TrainConfigError(f"progress must be one of {PROGRESS}; got {progress!r}.")
    if progress == "auto":
        view = _VIEWS.get("notebook")
        return "notebook" if view is not None and view[1]() else "text"
    if progress == "notebook" and "notebook" not in _VIEWS:
        raise TrainConfigError("progress='notebook' needs nbtune's notebook layer (import nbtune); use 'text'.")
    return progress


def progress_views(progress: str, title: str) -> tuple[list[Any], bool]:
    """(listeners to add to the run, whether to print console lines) for ``progress``."""
    kind = resolve_progress(progress)
    if kind in ("text", "none"):
        return [], kind == "text"
    return [_VIEWS[kind][0](title)], False

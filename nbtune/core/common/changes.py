"""What a session tells its listeners (the widgets) after a change, and how it holds them."""

from __future__ import annotations

import weakref
from enum import Enum
from typing import Callable


class Change(str, Enum):
    """The kinds of change a Session reports to its listeners."""

    FREEZE = "freeze"  # requires_grad flags changed
    HEAD = "head"  # the task head was replaced or re-initialised
    TRAIN = "train"  # weights and history moved on
    MODEL = "model"  # a new model object: an adapter attached, deleted or merged, another task


class Listeners:
    """Callbacks ``f(change)``. A bound method is held weakly, so a widget that nothing else keeps (a closed or
    replaced output) is dropped instead of being kept alive and updated by every later change."""

    def __init__(self) -> None:
        self._refs: list[Callable[[], Callable | None]] = []

    def add(self, callback: Callable[[Change], None]) -> None:
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            self._refs.append(weakref.WeakMethod(callback))
        else:  # a plain function or lambda: nothing else may hold it, so keep it
            self._refs.append(lambda cb=callback: cb)

    def remove(self, callback: Callable[[Change], None]) -> None:
        self._refs = [r for r in self._refs if r() is not None and r() != callback]

    def notify(self, change: Change) -> None:
        alive = []
        for ref in self._refs:
            callback = ref()
            if callback is not None:
                alive.append(ref)
                callback(change)
        self._refs = alive

    def __len__(self) -> int:
        return sum(r() is not None for r in self._refs)

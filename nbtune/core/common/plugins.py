"""Plug-in files: a registry's package holds one file per plug-in (a task, an objective, a modality), each
registering itself when imported. ``PluginFiles`` imports them all once, when a registry is first read."""

from __future__ import annotations

import importlib
import pkgutil


class PluginFiles:
    """Imports every module of ``package`` once, except ``skip`` (the registry's own files) and ``_private`` ones.

    A flag, not the registry's size, says whether all were read: a file imported directly registers itself first."""

    def __init__(self, package: str, skip: set[str]):
        self.package, self.skip, self.loaded = package, skip, False

    def ensure_loaded(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        for module in pkgutil.iter_modules(importlib.import_module(self.package).__path__):
            if module.name not in self.skip and not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")


class Registry:
    """Named plug-in classes of one kind (tasks, objectives, modalities): ``register`` as a class decorator, then
    read in registration order once every plug-in file of ``package`` is imported."""

    def __init__(self, kind: str, package: str, skip: set[str]):
        self.kind = kind
        self.files = PluginFiles(package, skip)
        self.items: dict[str, type] = {}

    def register(self, cls: type) -> type:
        if not getattr(cls, "name", "") or cls.name in self.items and self.items[cls.name] is not cls:
            raise ValueError(f"The {self.kind} class {cls.__name__} needs a unique name; got {cls.name!r}.")
        self.items[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self.items.pop(name, None)

    def all(self) -> list[type]:
        self.files.ensure_loaded()
        return list(self.items.values())

    def names(self) -> list[str]:
        return [cls.name for cls in self.all()]

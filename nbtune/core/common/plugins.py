"""Plug-in files: a registry's package holds one file per plug-in (a task, an objective, a modality), each
registering itself when imported. ``PluginFiles`` imports them all once, when a registry is first read."""

from __future__ import annotations

import importlib
import pkgutil


class PluginFiles:
    """Imports every module of ``package`` once, except ``skip`` (the registry's own files) and ``_private`` ones.

    A flag, not the registry's size, says whether all were read: a file imported directly registers itself first."""

    def __init__(self, package: str, skip: set[str], first: tuple[str, ...] = ()):
        self.package, self.skip, self.first, self.loaded = package, skip, first, False

    def ensure_loaded(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        modules = sorted(pkgutil.iter_modules(importlib.import_module(self.package).__path__),
                         key=lambda m: (m.name not in self.first, m.name))  # ``first`` ones lead listings
        for module in modules:
            if module.name not in self.skip and not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")


class Registry:
    """Named plug-in classes of one kind (tasks, objectives, modalities): ``register`` as a class decorator, then
    read in registration order once every plug-in file of ``package`` is imported."""

    def __init__(self, kind: str, package: str, skip: set[str], first: tuple[str, ...] = ()):
        self.kind = kind
        self.files = PluginFiles(package, skip, first)
        self.items: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Add ``cls`` (a class, or an instance such as an adapter method) under its ``name``."""
        if not getattr(cls, "name", "") or cls.name in self.items and self.items[cls.name] is not cls:
            label = getattr(cls, "__name__", type(cls).__name__)
            raise ValueError(f"The {self.kind} {label} needs a unique name; {getattr(cls, 'name', '')!r} is "
                             "empty or already registered.")
        self.items[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self.items.pop(name, None)

    def all(self) -> list[type]:
        self.files.ensure_loaded()
        return list(self.items.values())

    def names(self) -> list[str]:
        return [cls.name for cls in self.all()]


def plugin_modules(*plugins: object) -> list[str]:
    """The modules, outside nbtune, that define these plug-ins (classes or instances): what a saved session, a run
    or a recipe must import again before its task, objective or modality names mean anything."""
    out: list[str] = []
    for plugin in plugins:
        if plugin is None:
            continue
        module = (plugin if isinstance(plugin, type) else type(plugin)).__module__
        if module != "nbtune" and not module.startswith("nbtune.") and module != "__main__" and module not in out:
            out.append(module)
    return out


def import_plugins(modules, error: type[Exception], where: str) -> None:
    """Import the plug-in modules a saved session, run or recipe names (each registers what it defines); one that
    cannot be imported is ``error`` naming it and the way out."""
    for module in modules or []:
        try:
            importlib.import_module(str(module))
        except ImportError as exc:
            raise error(f"{where} uses plug-ins from the module {module!r}, which cannot be imported here ({exc}). "
                        f"Install it or put its folder on sys.path, then try again.") from None

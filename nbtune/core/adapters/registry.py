"""The adapter-method registry, as peft's ``register_peft_method``: each PEFT method is one file in ``methods/`` that
registers an ``AdapterMethod``. ``Session.add_adapter``, recipes, export, the ``%nbtune`` subcommands and their
completion, and the adapter panel's form all read this registry, so a new method touches no other file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from nbtune.core.common.errors import AdapterError, close_matches
from nbtune.core.common.plugins import Registry


@dataclass
class AdapterPlan:
    """A validated request: the peft config, plus what nbtune does itself (text init of prompts)."""

    method: str
    config: Any  # peft.PeftConfig
    settings: dict[str, Any]
    init_text_ids: list[int] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Field:
    """One setting of a method: its name, kind and default, for forms, completion, recipes and export.

    ``kind`` is ``"int"``, ``"float"``, ``"bool"``, ``"text"``, ``"choice"`` (one of ``choices``) or ``"targets"``
    (module selectors: the panel shows the model's Linear groups as checkboxes).
    """

    name: str
    kind: str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    form: bool = True  # shown in the adapter panel (False: code, magic and recipes only)


@dataclass(frozen=True)
class AdapterMethod:
    """A PEFT method as nbtune offers it.

    ``plan(model, task, tokenizer, **settings)`` validates the settings against the model and returns an
    ``AdapterPlan`` without touching the model. ``estimate(params_per_rank, settings)``, where given, is the
    parameter count the panel shows before attaching (from the chosen targets' cost per unit of rank).
    """

    name: str
    label: str
    peft_type: str
    plan: Callable[..., AdapterPlan]
    fields: tuple[Field, ...]
    summary: str = ""
    mergeable: bool = False
    soft_prompt: bool = False  # virtual tokens: needs a task peft can prepend them for, cannot be switched off
    estimate: Callable[[int, dict[str, Any]], int] | None = None
    default_lr: float = 5e-4  # what ``train`` uses when no lr is given and this method's adapter is active

    @property
    def setting_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def accepted_keys(self) -> tuple[str, ...]:
        """What ``add_adapter(method, ...)`` takes: the settings and the adapter's ``name``."""
        return (*self.setting_names, "name")

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields}

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Unknown setting names are one error naming the method's real settings."""
        unknown = [k for k in settings if k not in self.setting_names]
        if unknown:
            said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if (h := close_matches(k, self.setting_names, n=1))
                                         else "") for k in unknown)
            raise AdapterError(f"{self.label} has no setting {said}. Its settings: {', '.join(self.setting_names)}.")


_METHODS = Registry("adapter method", "nbtune.core.adapters.methods", set(), first=("lora",))


def register_method(method: AdapterMethod) -> AdapterMethod:
    """Add ``method`` to the registry (each file in ``methods/`` calls this once at import)."""
    return _METHODS.register(method)


def unregister_method(name: str) -> None:
    """Remove a method registered at run time (tests, experiments)."""
    _METHODS.unregister(name)


def all_methods() -> list[AdapterMethod]:
    """Every registered method, LoRA first (the one most users want), then in registration order."""
    return sorted(_METHODS.all(), key=lambda m: m.name != "lora")


def method_names() -> list[str]:
    return [m.name for m in all_methods()]


def get_method(name: str) -> AdapterMethod:
    """The method called ``name``; an unknown name is an error listing the registered ones."""
    names = method_names()
    if name in names:
        return _METHODS.items[name]
    hint = close_matches(str(name), names, n=1)
    raise AdapterError(f"Unknown adapter method {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                       + f". Methods: {', '.join(names)}.")


def method_for_peft_type(peft_type: Any) -> AdapterMethod | None:
    """The registered method for a peft config's ``peft_type`` (enum or string), if any."""
    value = str(getattr(peft_type, "value", peft_type))
    return next((m for m in all_methods() if m.peft_type == value), None)



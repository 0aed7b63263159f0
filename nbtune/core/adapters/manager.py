"""Attaching, switching, disabling and merging adapters on a session's model, safely.

peft does the work; this module makes it safe for a notebook: a failed attach is rolled back, the
user's own freeze choices are re-applied after peft resets ``requires_grad``, and errors say what to do.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from nbtune.core.adapters.registry import AdapterPlan, all_methods, method_for_peft_type
from nbtune.core.common.errors import AdapterError, SelectorError
from nbtune.core.model.architecture import is_adapter_param, is_peft_model, is_shadow_param
from nbtune.core.model.freeze import select
from nbtune.core.model.params import param_numel
from nbtune.core.model.quantize import merge_into_dequantized, quantization_of


@dataclass
class AdapterInfo:
    """One adapter on the session: its name, method, whether it is active, its own parameter count."""

    name: str
    method: str
    active: bool
    params: int
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        star = "*" if self.active else " "
        return f"{star} {self.name}: {self.method} ({self.params:,} params) {self.settings}"


def method_of(model: nn.Module, name: str) -> str:
    """The registered method name of adapter ``name`` (peft's own type name, lower-cased, if nbtune has none)."""
    peft_type = model.peft_config[name].peft_type
    method = method_for_peft_type(peft_type)
    return method.name if method is not None else str(getattr(peft_type, "value", peft_type)).lower()


def _mergeable(method: str) -> bool:
    return any(m.name == method and m.mergeable for m in all_methods())


def adapter_infos(model: nn.Module, settings: dict[str, dict]) -> list[AdapterInfo]:
    if not is_peft_model(model):
        return []
    active = model.active_adapter
    out = []
    for name in model.peft_config:
        n = sum(param_numel(p) for pname, p in model.named_parameters()
                if is_adapter_param(pname) and not is_shadow_param(pname) and name in pname.split("."))
        out.append(AdapterInfo(name, method_of(model, name), name == active, n, settings.get(name, {})))
    return out


def _probe(model: nn.Module, probe: Callable[[nn.Module], dict | None] | None) -> None:
    """Run the adapted model once on the modality's probe batch (prefix tuning may break a model; this finds out
    while the attach can still be rolled back). No probe: nothing is run."""
    batch = probe(model) if probe is not None else None
    if batch is None:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        model.train(was_training)


def _put(root: nn.Module, name: str, module: nn.Module) -> None:
    """Set the submodule at dotted ``name`` of ``root`` to ``module``."""
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, module)


def _strip_peft_layers(base: nn.Module) -> None:
    """Undo peft's in-place changes to a base model (tuner layers and trainable head copies)."""
    for name, module in list(base.named_modules()):
        replacement = None
        if hasattr(module, "original_module") and hasattr(module, "modules_to_save"):
            replacement = module.original_module
        elif hasattr(module, "get_base_layer") and hasattr(module, "base_layer"):
            replacement = module.get_base_layer()
        if replacement is not None and name:
            _put(base, name, replacement)


def _init_prompt_from_text(model: nn.Module, name: str, ids: list[int]) -> None:
    """Initialise virtual tokens from the embeddings of ``ids`` repeated to length (peft's TEXT init)."""
    weight = model.prompt_encoder[name].embedding.weight
    total = weight.shape[0]
    tiled = (ids * (total // len(ids) + 1))[:total]
    emb = model.word_embeddings(torch.tensor(tiled, device=weight.device))
    with torch.no_grad():
        weight.copy_(emb.detach().to(weight.dtype))


def replay_freeze_log(model: nn.Module, log: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """Re-apply the user's freeze/unfreeze calls to base parameters after peft reset them.

    Adapter parameters are left as peft set them; a selector that no longer resolves is reported, not raised.
    """
    notes = []
    for action, selectors in log:
        try:
            names = select(model, *selectors).params
        except SelectorError as exc:
            notes.append(f"could not re-apply {action}{selectors} after attaching: {exc}")
            continue
        for pname in names:
            if not is_adapter_param(pname):
                model.get_parameter(pname).requires_grad_(action == "unfreeze")
    return notes


def attach(model: nn.Module, plan: AdapterPlan, name: str, freeze_log,
           probe: Callable[[nn.Module], dict | None] | None = None) -> tuple[nn.Module, list[str]]:
    """Attach ``plan`` as adapter ``name``; return (the peft model, notes). Rolls back on any failure.

    ``probe`` builds a batch the model accepts (the task's modality's ``probe_batch``): the adapted model runs on it
    once before the attach is kept."""
    from peft import get_peft_model

    if not isinstance(name, str) or not name.strip() or "." in name:
        raise AdapterError(f"Adapter names are non-empty strings without dots; got {name!r}.")
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    if is_peft_model(model):
        if name in model.peft_config:
            raise AdapterError(f"An adapter named {name!r} already exists; choose another name= or "
                               f"remove it with s.delete_adapter({name!r}).")
        current = method_of(model, model.active_adapter)
        if current != plan.method:
            raise AdapterError(
                f"This session's adapters are {current}; peft cannot hold a {plan.method} adapter beside them in one "
                "model. Merge it (s.merge()), delete it (s.delete_adapter(name)), or start a new session."
            )
        previous = model.active_adapter
        try:
            model.add_adapter(name, plan.config)
            model.set_adapter(name)
            if plan.init_text_ids:
                _init_prompt_from_text(model, name, plan.init_text_ids)
            _probe(model, probe)
        except Exception as exc:
            if name in model.peft_config:
                model.delete_adapter(name)
            model.set_adapter(previous)
            _restore_flags(model, flags)
            raise AdapterError(f"Could not attach {plan.method} adapter {name!r}: {exc}") from None
        wrapped = model
    else:
        try:
            with _quiet_deprecations():
                wrapped = get_peft_model(model, plan.config, adapter_name=name)
        except Exception as exc:  # peft validates targets and architectures; keep the model as it was
            _strip_peft_layers(model)
            _restore_flags(model, flags)
            raise AdapterError(
                f"Could not attach {plan.method} to {type(model).__name__}: peft says {exc!r}. This method may not "
                "support the architecture; LoRA and IA3 work on any model with Linear layers. Nothing was changed."
            ) from None
        try:
            if plan.init_text_ids:
                _init_prompt_from_text(wrapped, name, plan.init_text_ids)
            _probe(wrapped, probe)
        except Exception as exc:
            _strip_peft_layers(model)
            _restore_flags(model, flags)
            raise AdapterError(
                f"{plan.method} tuning does not work with {type(model).__name__} in this version of peft/transformers "
                f"({type(exc).__name__}: {exc}). Use LoRA or IA3 on this model instead."
            ) from None
    notes = replay_freeze_log(wrapped, freeze_log)
    return wrapped, notes + plan.notes


@contextlib.contextmanager
def _quiet_deprecations():
    """peft calls a transformers method that transformers 5 marks deprecated; the warning is not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _restore_flags(model: nn.Module, flags: dict[str, bool]) -> None:
    for n, p in model.named_parameters():
        if n in flags:
            p.requires_grad_(flags[n])


def require_peft(model: nn.Module, action: str) -> None:
    if not is_peft_model(model):
        raise AdapterError(f"Cannot {action}: no adapter is attached. Add one with add_lora(), add_prompt_tuning()...")


def set_active(model: nn.Module, name: str, freeze_log) -> list[str]:
    require_peft(model, "set an adapter")
    if name not in model.peft_config:
        raise AdapterError(f"No adapter named {name!r}; adapters: {list(model.peft_config)}.")
    model.set_adapter(name)
    return replay_freeze_log(model, freeze_log)


def set_enabled(model: nn.Module, enabled: bool) -> None:
    require_peft(model, "enable or disable adapters")
    if not _mergeable(method_of(model, model.active_adapter)):
        raise AdapterError(
            "Soft-prompt adapters cannot be switched off in place; use `with s.adapters_disabled(): ...` to run "
            "the base model for a block of code."
        )
    if enabled:
        model.base_model.enable_adapter_layers()
    else:
        model.base_model.disable_adapter_layers()


@contextlib.contextmanager
def disabled(model: nn.Module):
    require_peft(model, "disable adapters")
    with model.disable_adapter():
        yield


@contextlib.contextmanager
def _trainable_kept(model: nn.Module):
    """Put every parameter's ``requires_grad`` back as it was after the block (peft's ``set_adapter`` marks the
    adapter it activates trainable); yields the flags by name."""
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        yield flags
    finally:
        _restore_flags(model, flags)


def snapshot(model: nn.Module, name: str, copy_name: str) -> None:
    """Add adapter ``copy_name``: a frozen copy of adapter ``name``'s current weights (peft's own state dict), for
    a reference such as DPO's. What trains and which adapter is active do not change."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    require_peft(model, "copy an adapter")
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model, adapter_name=name).items()}
    with _trainable_kept(model) as flags:
        model.add_adapter(copy_name, copy.deepcopy(model.peft_config[name]))
        set_peft_model_state_dict(model, state, adapter_name=copy_name)
        model.set_adapter(name)
    for n, p in model.named_parameters():
        if n not in flags:  # the copy's own weights
            p.requires_grad_(False)


@contextlib.contextmanager
def running(model: nn.Module, name: str):
    """Run adapter ``name`` for the block (a forward under a reference adapter), then the active one again, with
    what trains put back exactly."""
    previous = model.active_adapter
    with _trainable_kept(model):
        model.set_adapter(name, inference_mode=True)
        try:
            yield
        finally:
            model.set_adapter(previous)


def _settle_trained_copies(model: nn.Module, active: str) -> None:
    """Put each trained head copy (peft's ``modules_to_save``) in place of its wrapper before merging.

    peft's generic unload (VeRA, LoHa, LoKr, ...) assumes every wrapped module has a ``weight`` and fails on a
    container such as BERT's pooler; LoRA's own unload does this same replacement.
    """
    for name, module in list(model.named_modules()):
        copies = getattr(module, "modules_to_save", None)
        if name and hasattr(module, "original_module") and copies is not None and active in copies:
            _put(model, name, copies[active])


def merge(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Fold the active LoRA/IA3 adapter into the base weights; return (plain model, notes)."""
    require_peft(model, "merge")
    active = model.active_adapter
    method = method_of(model, active)
    if not _mergeable(method):
        raise AdapterError(
            f"Adapter {active!r} is {method} tuning: its virtual tokens are extra inputs, not a weight change, so "
            "there is nothing to merge. Save it with s.save(folder) and load it with peft or nbtune.load(folder)."
        )
    others = [n for n in model.peft_config if n != active]
    _settle_trained_copies(model, active)
    notes = [f"merged adapter {active!r} ({method}) into the base weights"]
    if quantization_of(model):
        merged, said = merge_into_dequantized(model, active)
        notes += said
    else:
        merged = model.merge_and_unload(adapter_names=[active])
    if others:
        notes.append(f"dropped the other adapters {others}: merge keeps only the active one")
    return merged, notes


def delete(model: nn.Module, name: str) -> tuple[nn.Module, list[str]]:
    """Remove adapter ``name``; removing the last one returns the plain base model (peft's layers stripped)."""
    require_peft(model, "delete an adapter")
    if name not in model.peft_config:
        raise AdapterError(f"No adapter named {name!r}; adapters: {list(model.peft_config)}.")
    others = [n for n in model.peft_config if n != name]
    if not others:
        base = model.get_base_model()
        _strip_peft_layers(base)  # back to the original layers and head (peft's generic unload fails on poolers)
        return base, [f"deleted adapter {name!r}; the session holds the base model again"]
    if model.active_adapter == name:
        model.set_adapter(others[0])
    model.delete_adapter(name)
    return model, [f"deleted adapter {name!r}; active adapter: {model.active_adapter!r}"]

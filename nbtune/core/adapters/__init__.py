"""PEFT adapters through peft: a registry of methods (one file each in ``methods/``), one manager for
attach/switch/merge."""

from nbtune.core.adapters.manager import AdapterInfo, adapter_infos
from nbtune.core.adapters.registry import (
    AdapterMethod,
    AdapterPlan,
    Field,
    all_methods,
    get_method,
    method_for_peft_type,
    method_names,
    register_method,
)
from nbtune.core.adapters.targets import LoraTargets, TargetGroup, lora_targets, resolve_targets
from nbtune.core.model.architecture import is_peft_model

__all__ = [
    "AdapterInfo", "AdapterMethod", "AdapterPlan", "Field", "LoraTargets", "TargetGroup", "adapter_infos",
    "all_methods", "get_method", "is_peft_model", "lora_targets", "method_for_peft_type", "method_names",
    "register_method", "resolve_targets",
]

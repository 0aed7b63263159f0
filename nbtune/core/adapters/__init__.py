"""PEFT adapters through peft: one builder per method family, one manager for attach/switch/merge."""

from ..architecture import is_peft_model
from .manager import AdapterInfo, adapter_infos
from .methods import AdapterPlan, ia3_plan, lora_plan, prefix_tuning_plan, prompt_tuning_plan, ptuning_plan
from .targets import LoraTargets, TargetGroup, lora_targets, resolve_targets

# Method name -> plan builder; new families register here.
METHODS = {
    "lora": lora_plan,
    "prompt": prompt_tuning_plan,
    "prefix": prefix_tuning_plan,
    "ptuning": ptuning_plan,
    "ia3": ia3_plan,
}

__all__ = [
    "METHODS", "AdapterInfo", "AdapterPlan", "LoraTargets", "TargetGroup", "adapter_infos", "ia3_plan",
    "is_peft_model", "lora_plan", "lora_targets", "prefix_tuning_plan", "prompt_tuning_plan", "ptuning_plan",
    "resolve_targets",
]

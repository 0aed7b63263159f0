"""IA3: learned rescaling vectors on attention keys/values and feed-forward activations."""

from __future__ import annotations

from typing import Any

from nbtune.core.adapters.methods._common import modules_to_save, task_type
from nbtune.core.adapters.registry import AdapterMethod, AdapterPlan, Field, register_method
from nbtune.core.adapters.targets import resolve_targets
from nbtune.core.common.errors import AdapterError
from nbtune.core.model.architecture import unwrap


def ia3_plan(model, task: str | None, tokenizer: Any = None, targets: Any = None, feedforward: Any = None) -> AdapterPlan:
    """IA3 on peft's default targets for the architecture, or on ``targets`` (``feedforward`` among them)."""
    from peft import IA3Config
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FF
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as DEFAULT_TARGETS

    inner, _ = unwrap(model)
    model_type = getattr(getattr(inner, "config", None), "model_type", None)
    if targets is None:
        if model_type not in DEFAULT_TARGETS:
            raise AdapterError(
                f"IA3 has no default targets for {type(inner).__name__}; pass targets=[...] (and feedforward=[...]) "
                "naming its attention and feed-forward Linear layers (see s.lora_targets())."
            )
        names = resolve_targets(model, DEFAULT_TARGETS[model_type], linear_only=True)
        ff_names = resolve_targets(model, FF[model_type], linear_only=True) if FF.get(model_type) else []
    else:
        names = resolve_targets(model, targets, linear_only=True)
        ff_names = resolve_targets(model, feedforward, linear_only=True) if feedforward else []
    missing = [n for n in ff_names if n not in names]
    if missing:
        raise AdapterError(f"feedforward modules must also be targets; not targets: {missing[:5]}.")
    config = IA3Config(target_modules=names, feedforward_modules=ff_names, modules_to_save=modules_to_save(model, task),
                       task_type=task_type(task, "IA3"))
    return AdapterPlan("ia3", config, dict(targets=targets, feedforward=feedforward))


IA3 = register_method(AdapterMethod(
    default_lr=0.003, name="ia3", label="IA3", peft_type="IA3", plan=ia3_plan, mergeable=True,
    summary="learned scaling of keys, values and feed-forward activations (Liu et al. 2022)",
    fields=(
        Field("targets", "text", None, "layers to rescale (default: peft's attention and feed-forward targets)",
              form=False),
        Field("feedforward", "text", None, "which of the targets are feed-forward layers", form=False),
    ),
))

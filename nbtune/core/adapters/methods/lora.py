"""LoRA, with the DoRA and rsLoRA switches: a trainable low-rank update beside each target layer."""

from __future__ import annotations

from typing import Any

from nbtune.core.adapters.methods._common import (
    TARGETS,
    modules_to_save,
    positive_int,
    probability,
    targets_setting,
    task_type,
)
from nbtune.core.adapters.registry import AdapterMethod, AdapterPlan, Field, register_method
from nbtune.core.adapters.targets import resolve_targets
from nbtune.core.common.errors import AdapterError


def lora_plan(model, task: str | None, tokenizer: Any = None, r: int = 8, alpha: float | None = None,
              dropout: float = 0.05, targets: Any = "qkv", dora: bool = False, rslora: bool = False,
              bias: str = "none") -> AdapterPlan:
    """LoRA (with DoRA and rsLoRA switches) on the resolved target modules."""
    from peft import LoraConfig

    r = positive_int(r, "LoRA rank r", "Typical values are 4-64.")
    alpha = 2 * r if alpha is None else alpha
    if alpha <= 0:
        raise AdapterError(f"LoRA alpha must be positive; got {alpha!r}. A common choice is 2*r.")
    dropout = probability(dropout, "LoRA dropout")
    if bias not in ("none", "all", "lora_only"):
        raise AdapterError(f"bias must be 'none', 'all' or 'lora_only'; got {bias!r}.")
    names = resolve_targets(model, targets)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, use_dora=dora,
                        use_rslora=rslora, bias=bias, modules_to_save=modules_to_save(model, task),
                        task_type=task_type(task, "LoRA"))
    settings = dict(r=r, alpha=alpha, dropout=dropout, targets=targets_setting(targets), dora=dora, rslora=rslora,
                    bias=bias)
    return AdapterPlan("lora", config, settings)


LORA = register_method(AdapterMethod(
    name="lora", label="LoRA", peft_type="LORA", plan=lora_plan, mergeable=True,
    summary="low-rank updates beside the target layers (Hu et al. 2021); DoRA and rsLoRA as switches",
    fields=(
        Field("r", "int", 8, "rank", minimum=1, maximum=4096),
        Field("alpha", "float", None, "scaling numerator (default 2*r)"),
        Field("dropout", "float", 0.05, "dropout on the LoRA input", minimum=0.0, maximum=0.99),
        TARGETS,
        Field("dora", "bool", False, "weight-decomposed LoRA"),
        Field("rslora", "bool", False, "rank-stabilised scaling alpha/sqrt(r)"),
        Field("bias", "choice", "none", "which biases train", choices=("none", "all", "lora_only")),
    ),
    estimate=lambda per_rank, settings: per_rank * int(settings.get("r") or 8),
))

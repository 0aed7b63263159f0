"""VeRA: one pair of frozen random projections shared by every layer, and small trainable scaling vectors per
layer (Kopiczko et al. 2024): far fewer trainable parameters than LoRA at the same rank."""

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


def vera_plan(model, task: str | None, tokenizer: Any = None, r: int = 256, dropout: float = 0.0,
              targets: Any = "qkv", d_initial: float = 0.1, seed: int = 0) -> AdapterPlan:
    from peft import VeraConfig

    r = positive_int(r, "VeRA rank r", "VeRA uses large ranks cheaply; typical values are 256-1024.")
    dropout = probability(dropout, "VeRA dropout")
    names = resolve_targets(model, targets, linear_only=True)
    config = VeraConfig(r=r, vera_dropout=dropout, target_modules=names, d_initial=d_initial,
                        projection_prng_key=int(seed), save_projection=True,
                        modules_to_save=modules_to_save(model, task), task_type=task_type(task, "VeRA"))
    return AdapterPlan("vera", config, dict(r=r, dropout=dropout, targets=targets_setting(targets), d_initial=d_initial,
                                            seed=int(seed)))


VERA = register_method(AdapterMethod(
    default_lr=0.005, name="vera", label="VeRA", peft_type="VERA", plan=vera_plan, mergeable=True,
    summary="shared frozen random projections, trainable per-layer scaling vectors",
    fields=(
        Field("r", "int", 256, "rank of the shared projections", minimum=1, maximum=65536),
        Field("dropout", "float", 0.0, "dropout on the input", minimum=0.0, maximum=0.99),
        TARGETS,
        Field("d_initial", "float", 0.1, "initial value of the d scaling vector"),
        Field("seed", "int", 0, "seed of the shared random projections (saved with the adapter)", form=False),
    ),
))

"""The LyCORIS family: LoHa (Hadamard product of two low-rank pairs) and LoKr (Kronecker product), more expressive
than LoRA at the same rank."""

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


def _common_settings(method: str, model, r, alpha, rank_dropout, module_dropout, targets) -> dict[str, Any]:
    r = positive_int(r, f"{method} rank r", "Typical values are 4-32.")
    alpha = r if alpha is None else alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise AdapterError(f"{method} alpha must be positive; got {alpha!r}.")
    return dict(r=r, alpha=alpha, rank_dropout=probability(rank_dropout, f"{method} rank_dropout"),
                module_dropout=probability(module_dropout, f"{method} module_dropout"),
                target_modules=resolve_targets(model, targets))


def loha_plan(model, task: str | None, tokenizer: Any = None, r: int = 8, alpha: float | None = None,
              rank_dropout: float = 0.0, module_dropout: float = 0.0, targets: Any = "qkv") -> AdapterPlan:
    from peft import LoHaConfig

    kw = _common_settings("LoHa", model, r, alpha, rank_dropout, module_dropout, targets)
    config = LoHaConfig(**kw, modules_to_save=modules_to_save(model, task), task_type=task_type(task, "LoHa"))
    return AdapterPlan("loha", config, dict(r=kw["r"], alpha=kw["alpha"], rank_dropout=kw["rank_dropout"],
                                            module_dropout=kw["module_dropout"], targets=targets_setting(targets)))


def lokr_plan(model, task: str | None, tokenizer: Any = None, r: int = 8, alpha: float | None = None,
              rank_dropout: float = 0.0, module_dropout: float = 0.0, targets: Any = "qkv",
              decompose_both: bool = False, decompose_factor: int = -1) -> AdapterPlan:
    from peft import LoKrConfig

    kw = _common_settings("LoKr", model, r, alpha, rank_dropout, module_dropout, targets)
    if isinstance(decompose_factor, bool) or not isinstance(decompose_factor, int) or decompose_factor in (0, 1) \
            or decompose_factor < -1:
        raise AdapterError(f"decompose_factor must be -1 (automatic) or an integer >= 2; got {decompose_factor!r}.")
    config = LoKrConfig(**kw, decompose_both=decompose_both, decompose_factor=decompose_factor,
                        modules_to_save=modules_to_save(model, task), task_type=task_type(task, "LoKr"))
    return AdapterPlan("lokr", config, dict(r=kw["r"], alpha=kw["alpha"], rank_dropout=kw["rank_dropout"],
                                            module_dropout=kw["module_dropout"], targets=targets_setting(targets),
                                            decompose_both=decompose_both, decompose_factor=decompose_factor))


_SHARED = (
    Field("r", "int", 8, "rank", minimum=1, maximum=4096),
    Field("alpha", "float", None, "scaling numerator (default r)"),
    Field("rank_dropout", "float", 0.0, "dropout over rank components", minimum=0.0, maximum=0.99),
    Field("module_dropout", "float", 0.0, "probability of skipping a whole adapted layer", minimum=0.0, maximum=0.99),
    TARGETS,
)
LOHA = register_method(AdapterMethod(
    name="loha", label="LoHa", peft_type="LOHA", plan=loha_plan, mergeable=True, fields=_SHARED,
    summary="Hadamard product of two low-rank pairs (LyCORIS)",
    estimate=lambda per_rank, settings: 2 * per_rank * int(settings.get("r") or 8),
))
LOKR = register_method(AdapterMethod(
    name="lokr", label="LoKr", peft_type="LOKR", plan=lokr_plan, mergeable=True,
    summary="Kronecker product of a small and a low-rank factor (LyCORIS)",
    fields=_SHARED + (Field("decompose_both", "bool", False, "low-rank factorise the small factor too"),
                      Field("decompose_factor", "int", -1, "Kronecker factor size (-1: automatic)", form=False)),
))

"""Soft prompts: prompt tuning, prefix tuning and P-tuning, trainable virtual tokens in front of the input."""

from __future__ import annotations

from typing import Any

from nbtune.core.adapters.methods._common import modules_to_save, positive_int, require_embeddings, task_type
from nbtune.core.adapters.registry import AdapterMethod, AdapterPlan, Field, register_method
from nbtune.core.common.errors import AdapterError


def prompt_tuning_plan(model, task: str | None, tokenizer: Any = None, n_tokens: int = 20,
                       init_text: str | None = None) -> AdapterPlan:
    """Prompt tuning: ``n_tokens`` trainable virtual token embeddings, random or initialised from text."""
    from peft import PromptTuningConfig

    n_tokens = positive_int(n_tokens, "n_tokens", "Use e.g. n_tokens=20.")
    peft_task = task_type(task, "prompt tuning", soft_prompt=True)
    require_embeddings(model, "prompt tuning")
    ids = None
    if init_text is not None:
        if tokenizer is None:
            raise AdapterError("init_text needs a tokenizer; load the model with one or pass init_text=None.")
        ids = list(tokenizer(init_text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise AdapterError(f"init_text {init_text!r} tokenizes to nothing; give some words.")
    config = PromptTuningConfig(task_type=peft_task, num_virtual_tokens=n_tokens, prompt_tuning_init="RANDOM",
                                modules_to_save=modules_to_save(model, task))
    return AdapterPlan("prompt", config, dict(n_tokens=n_tokens, init_text=init_text), init_text_ids=ids)


def prefix_tuning_plan(model, task: str | None, tokenizer: Any = None, n_tokens: int = 10, projection: bool = False,
                       hidden: int | None = None) -> AdapterPlan:
    """Prefix tuning: trainable key/value prefixes in every attention layer."""
    from peft import PrefixTuningConfig

    n_tokens = positive_int(n_tokens, "n_tokens", "Use e.g. n_tokens=10.")
    peft_task = task_type(task, "prefix tuning", soft_prompt=True)
    require_embeddings(model, "prefix tuning")
    kwargs = dict(task_type=peft_task, num_virtual_tokens=n_tokens, prefix_projection=projection,
                  modules_to_save=modules_to_save(model, task))
    if hidden is not None:
        kwargs["encoder_hidden_size"] = positive_int(hidden, "hidden", "It sizes the prefix projection MLP.")
    return AdapterPlan("prefix", PrefixTuningConfig(**kwargs), dict(n_tokens=n_tokens, projection=projection,
                                                                    hidden=hidden))


def ptuning_plan(model, task: str | None, tokenizer: Any = None, n_tokens: int = 10, encoder: str = "MLP",
                 hidden: int | None = None) -> AdapterPlan:
    """P-tuning: virtual tokens produced by a small prompt encoder (MLP or LSTM)."""
    from peft import PromptEncoderConfig

    n_tokens = positive_int(n_tokens, "n_tokens", "Use e.g. n_tokens=10.")
    if str(encoder).upper() not in ("MLP", "LSTM"):
        raise AdapterError(f"encoder must be 'MLP' or 'LSTM'; got {encoder!r}.")
    peft_task = task_type(task, "P-tuning", soft_prompt=True)
    emb = require_embeddings(model, "P-tuning")
    config = PromptEncoderConfig(task_type=peft_task, num_virtual_tokens=n_tokens,
                                 encoder_reparameterization_type=encoder.upper(),
                                 encoder_hidden_size=hidden or emb.embedding_dim,
                                 modules_to_save=modules_to_save(model, task))
    return AdapterPlan("ptuning", config, dict(n_tokens=n_tokens, encoder=encoder.upper(), hidden=hidden))


_TOKENS = Field("n_tokens", "int", 10, "virtual tokens", minimum=1, maximum=10000)

PROMPT = register_method(AdapterMethod(
    default_lr=0.03, name="prompt", label="Prompt tuning", peft_type="PROMPT_TUNING", plan=prompt_tuning_plan, soft_prompt=True,
    summary="trainable virtual token embeddings before the input (Lester et al. 2021)",
    fields=(Field("n_tokens", "int", 20, "virtual tokens", minimum=1, maximum=10000),
            Field("init_text", "text", None, "optional: text whose embeddings start the prompt")),
))
PREFIX = register_method(AdapterMethod(
    default_lr=0.01, name="prefix", label="Prefix tuning", peft_type="PREFIX_TUNING", plan=prefix_tuning_plan, soft_prompt=True,
    summary="trainable key/value prefixes in every attention layer (Li & Liang 2021)",
    fields=(_TOKENS, Field("projection", "bool", False, "reparameterise the prefix through an MLP"),
            Field("hidden", "int", None, "hidden size of that MLP", minimum=1, form=False)),
))
PTUNING = register_method(AdapterMethod(
    default_lr=0.01, name="ptuning", label="P-tuning", peft_type="P_TUNING", plan=ptuning_plan, soft_prompt=True,
    summary="virtual tokens from a small prompt encoder (Liu et al. 2021)",
    fields=(_TOKENS, Field("encoder", "choice", "MLP", "prompt encoder", choices=("MLP", "LSTM")),
            Field("hidden", "int", None, "encoder hidden size (default: embedding size)", minimum=1, form=False)),
))

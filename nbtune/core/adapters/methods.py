"""One builder per PEFT method family: validate the user's settings, then build the peft config.

Validation happens here, before the model is touched, so a bad setting changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..architecture import head_module_names, unwrap
from ..errors import AdapterError
from .targets import resolve_targets

# nbtune task -> peft TaskType (prompt methods need it to place virtual tokens; LoRA uses it for the head).
PEFT_TASK_TYPES = {
    "text-classification": "SEQ_CLS",
    "token-classification": "TOKEN_CLS",
    "question-answering": "QUESTION_ANS",
    "causal-lm": "CAUSAL_LM",
    "seq2seq": "SEQ_2_SEQ_LM",
}
# Tasks whose head is new for the task and must be trained and saved with the adapter.
HEAD_TRAINED_TASKS = ("text-classification", "token-classification", "question-answering", None)


@dataclass
class AdapterPlan:
    """A validated request: the peft config, plus what nbtune does itself (text init of prompts)."""

    method: str
    config: Any  # peft.PeftConfig
    settings: dict[str, Any]
    init_text_ids: list[int] | None = None
    notes: list[str] = field(default_factory=list)


def _positive_int(value, what: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AdapterError(f"{what} must be a positive integer; got {value!r}. {fix}")
    return value


def _modules_to_save(model: nn.Module, task: str | None) -> list[str] | None:
    """The head, relative to the unwrapped model, when the task trains a fresh head."""
    if task not in HEAD_TRAINED_TASKS:
        return None
    inner, _ = unwrap(model)
    heads = head_module_names(inner)
    return heads or None


def _task_type(task: str | None, method: str) -> str | None:
    task_type = PEFT_TASK_TYPES.get(task)
    if task_type is None and method in ("prompt", "prefix", "ptuning"):
        supported = ", ".join(PEFT_TASK_TYPES)
        raise AdapterError(
            f"{method} tuning needs a task peft knows how to prepend virtual tokens for ({supported}); this session's "
            f"task is {task!r}. Load the model with one of those tasks, or use LoRA/IA3."
        )
    return task_type


def lora_plan(model: nn.Module, task: str | None, r: int = 8, alpha: float | None = None, dropout: float = 0.05,
              targets: Any = "qkv", dora: bool = False, rslora: bool = False, bias: str = "none") -> AdapterPlan:
    """LoRA (with DoRA and rsLoRA switches) on the resolved target modules."""
    from peft import LoraConfig

    r = _positive_int(r, "LoRA rank r", "Typical values are 4-64.")
    alpha = 2 * r if alpha is None else alpha
    if alpha <= 0:
        raise AdapterError(f"LoRA alpha must be positive; got {alpha!r}. A common choice is 2*r.")
    if not 0 <= dropout < 1:
        raise AdapterError(f"LoRA dropout must be in [0, 1); got {dropout!r}.")
    if bias not in ("none", "all", "lora_only"):
        raise AdapterError(f"bias must be 'none', 'all' or 'lora_only'; got {bias!r}.")
    names = resolve_targets(model, targets)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, use_dora=dora,
                        use_rslora=rslora, bias=bias, modules_to_save=_modules_to_save(model, task),
                        task_type=_task_type(task, "lora"))
    settings = dict(r=r, alpha=alpha, dropout=dropout, targets=targets if isinstance(targets, str) else list(targets),
                    dora=dora, rslora=rslora, bias=bias)
    return AdapterPlan("lora", config, settings)


def _require_embeddings(model: nn.Module, method: str) -> nn.Module:
    inner, _ = unwrap(model)
    get = getattr(inner, "get_input_embeddings", None)
    emb = None
    if callable(get):
        try:
            emb = get()
        except NotImplementedError:
            emb = None
    if not isinstance(emb, nn.Embedding):
        raise AdapterError(
            f"{method} tuning prepends trainable vectors to the input embeddings, and {type(inner).__name__} has no "
            "input embedding layer (get_input_embeddings). Use LoRA or IA3 on this model instead."
        )
    return emb


def prompt_tuning_plan(model: nn.Module, task: str | None, tokenizer: Any, n_tokens: int = 20,
                       init_text: str | None = None) -> AdapterPlan:
    """Prompt tuning: ``n_tokens`` trainable virtual token embeddings, random or initialised from text."""
    from peft import PromptTuningConfig

    n_tokens = _positive_int(n_tokens, "n_tokens", "Use e.g. n_tokens=20.")
    task_type = _task_type(task, "prompt")
    _require_embeddings(model, "prompt")
    ids = None
    if init_text is not None:
        if tokenizer is None:
            raise AdapterError("init_text needs a tokenizer; load the model with one or pass init_text=None.")
        ids = list(tokenizer(init_text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise AdapterError(f"init_text {init_text!r} tokenizes to nothing; give some words.")
    config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=n_tokens, prompt_tuning_init="RANDOM",
                                modules_to_save=_modules_to_save(model, task))
    return AdapterPlan("prompt", config, dict(n_tokens=n_tokens, init_text=init_text), init_text_ids=ids)


def prefix_tuning_plan(model: nn.Module, task: str | None, n_tokens: int = 10, projection: bool = False,
                       hidden: int | None = None) -> AdapterPlan:
    """Prefix tuning: trainable key/value prefixes in every attention layer."""
    from peft import PrefixTuningConfig

    n_tokens = _positive_int(n_tokens, "n_tokens", "Use e.g. n_tokens=10.")
    task_type = _task_type(task, "prefix")
    _require_embeddings(model, "prefix")
    kwargs = dict(task_type=task_type, num_virtual_tokens=n_tokens, prefix_projection=projection,
                  modules_to_save=_modules_to_save(model, task))
    if hidden is not None:
        kwargs["encoder_hidden_size"] = _positive_int(hidden, "hidden", "It sizes the prefix projection MLP.")
    return AdapterPlan("prefix", PrefixTuningConfig(**kwargs), dict(n_tokens=n_tokens, projection=projection,
                                                                    hidden=hidden))


def ptuning_plan(model: nn.Module, task: str | None, n_tokens: int = 10, encoder: str = "MLP",
                 hidden: int | None = None) -> AdapterPlan:
    """P-tuning: virtual tokens produced by a small prompt encoder (MLP or LSTM)."""
    from peft import PromptEncoderConfig

    n_tokens = _positive_int(n_tokens, "n_tokens", "Use e.g. n_tokens=10.")
    if encoder.upper() not in ("MLP", "LSTM"):
        raise AdapterError(f"encoder must be 'MLP' or 'LSTM'; got {encoder!r}.")
    task_type = _task_type(task, "ptuning")
    emb = _require_embeddings(model, "P-")
    config = PromptEncoderConfig(task_type=task_type, num_virtual_tokens=n_tokens,
                                 encoder_reparameterization_type=encoder.upper(),
                                 encoder_hidden_size=hidden or emb.embedding_dim,
                                 modules_to_save=_modules_to_save(model, task))
    return AdapterPlan("ptuning", config, dict(n_tokens=n_tokens, encoder=encoder.upper(), hidden=hidden))


def ia3_plan(model: nn.Module, task: str | None, targets: Any = None, feedforward: Any = None) -> AdapterPlan:
    """IA3: learned scaling vectors on attention keys/values and feed-forward layers."""
    from peft import IA3Config
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FF
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS

    inner, _ = unwrap(model)
    model_type = getattr(getattr(inner, "config", None), "model_type", None)
    if targets is None:
        if model_type not in TARGETS:
            raise AdapterError(
                f"IA3 has no default targets for {type(inner).__name__}; pass targets=[...] (and feedforward=[...]) "
                "naming its attention and feed-forward Linear layers (see s.lora_targets())."
            )
        names = resolve_targets(model, TARGETS[model_type], linear_only=True)
        ff_names = resolve_targets(model, FF[model_type], linear_only=True) if FF.get(model_type) else []
    else:
        names = resolve_targets(model, targets, linear_only=True)
        ff_names = resolve_targets(model, feedforward, linear_only=True) if feedforward else []
    missing = [n for n in ff_names if n not in names]
    if missing:
        raise AdapterError(f"feedforward modules must also be targets; not targets: {missing[:5]}.")
    config = IA3Config(target_modules=names, feedforward_modules=ff_names, modules_to_save=_modules_to_save(model, task),
                       task_type=_task_type(task, "ia3"))
    return AdapterPlan("ia3", config, dict(targets=targets, feedforward=feedforward))


MERGEABLE = ("lora", "ia3")

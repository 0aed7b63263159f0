"""Where things are in a model: the task head, the repeated blocks, attention projections, embeddings.

These answers drive the freeze presets (``head``, ``qkv``, ``top:N``, ``embeddings``), tree folding
and, later, LoRA target suggestions. They work on any ``nn.Module``; transformers models get
better answers because they tell us their base model.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass

from torch import nn

# Module names that are task heads in transformers and common hand-written models.
HEAD_NAMES = (
    "classifier", "score", "qa_outputs", "lm_head", "cls", "head", "heads", "fc", "pre_classifier",
    "classification_head", "output_layer",
)
# Attention input projections by architecture: BERT, GPT-2, Llama/Mistral, T5, Falcon/BLOOM/GPT-NeoX,
# Baichuan, Phi-3, ViT-style fused qkv.
QKV_NAMES = frozenset({
    "query", "key", "value", "c_attn", "q_proj", "k_proj", "v_proj", "q", "k", "v",
    "query_key_value", "W_pack", "qkv_proj", "qkv", "Wqkv", "in_proj",
})


def is_linear_like(module: nn.Module) -> bool:
    """Linear layers and GPT-2's Conv1D (a Linear with transposed weight), also once peft has wrapped them."""
    base = getattr(module, "base_layer", None)
    if isinstance(base, nn.Module) and base is not module:
        return is_linear_like(base)
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


@functools.cache
def adapter_param_prefixes() -> tuple[str, ...]:
    """Name parts that mark a parameter as peft's: peft's own prefix per method (``lora_``, ``vera_lambda_``,
    ``hada_``, ...), its soft-prompt container and its trainable head copies."""
    prefixes = {"prompt_encoder", "modules_to_save"}
    try:
        from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING
    except ImportError:  # an older peft: only the containers above are known
        PEFT_TYPE_TO_PREFIX_MAPPING = {}
    prefixes.update(PEFT_TYPE_TO_PREFIX_MAPPING.values())
    return tuple(sorted(prefixes))



def is_adapter_param(name: str) -> bool:
    """Parameters added by peft (adapter weights of any method, soft prompts, trainable copies of the head),
    recognised by peft's own name prefix for each method."""
    if "peft" not in sys.modules:
        # Only peft adds them, so a process that never imported peft has none. Importing it just to read its
        # prefixes would cost a full fine-tune's first train() 1.5 s on a 2-core CPU (peft imports bitsandbytes).
        return False
    return any(part.startswith(adapter_param_prefixes()) for part in name.split("."))


def is_shadow_param(name: str) -> bool:
    """peft's frozen copy of a head it trains (``classifier.original_module``): never trained by nbtune."""
    return ".original_module." in name or name.startswith("original_module.")


def is_under(name: str, prefixes) -> bool:
    """Whether dotted ``name`` is one of ``prefixes`` or inside one of them (``classifier.weight`` under
    ``classifier``, not under ``class``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def hidden_size(model: nn.Module) -> int | None:
    """The model's hidden size from its transformers config (whatever the family calls it), or None."""
    config = getattr(model, "config", None)
    return next((getattr(config, k) for k in ("hidden_size", "n_embd", "d_model", "dim")
                 if getattr(config, k, None)), None)


def canonical_name(name: str) -> str:
    """A parameter's name in the bare model, whatever peft wrapped around it (``base_model.model.`` in front,
    ``.base_layer.`` or ``.original_module.`` inside): the same before and after attaching or merging adapters."""
    if name.startswith("base_model.model."):
        name = name[len("base_model.model."):]
    return name.replace(".base_layer.", ".").replace(".original_module.", ".")


def is_peft_model(model: nn.Module) -> bool:
    """A peft wrapper (PeftModel): it holds adapter configs and the model it wraps."""
    return hasattr(model, "peft_config") and callable(getattr(model, "get_base_model", None))


def unwrap(model: nn.Module) -> tuple[nn.Module, str]:
    """(the transformers/plain model inside a peft wrapper, its dotted path); the model itself otherwise."""
    if is_peft_model(model):
        inner = model.get_base_model()
        for name, module in model.named_modules():
            if module is inner:
                return inner, name
    return model, ""


def has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def task_head_names(model: nn.Module) -> list[str]:
    """Dotted names of the task head's top modules (those outside the pretrained body).

    transformers: every top-level child with parameters that is not the base model (``bert``,
    ``transformer``, ``model``...). T5-like models whose base model is the model itself, and plain
    modules: top-level children with a known head name (``HEAD_NAMES``); an ``nn.Sequential``'s last child when it is
    a Linear (the order of a Sequential is its data flow). Nothing else is guessed: an empty list means the caller
    asks the user to name the head.
    """
    inner, prefix = unwrap(model)
    if inner is not model:
        return [f"{prefix}.{n}" if prefix else n for n in task_head_names(inner)]
    base = getattr(model, "base_model", None)
    children = [(n, m) for n, m in model.named_children() if has_params(m)]
    if isinstance(base, nn.Module) and base is not model:
        names = [n for n, m in children if m is not base]
        if names:
            return names
    names = [n for n, _ in children if n in HEAD_NAMES]
    if not names and isinstance(base, nn.Module) and base is not model and [m for _, m in children] == [base]:
        # the base model is the whole network, head included (transformers' wrapper of a timm model): the head is
        # the base's child with a head name (timm's fc, head or classifier)
        prefix = next(n for n, m in children if m is base)
        return [f"{prefix}.{n}" for n, m in base.named_children() if n in HEAD_NAMES and has_params(m)]
    if names or not isinstance(model, nn.Sequential) or not children:
        return names
    # An nn.Sequential runs its children in order, so its last child is the output layer by construction (for
    # other modules registration order says nothing about data flow, so nothing is inferred from it).
    last_name, last = children[-1]
    return [last_name] if is_linear_like(last) else []


def modules_with_params(model: nn.Module) -> list[str]:
    """Modules that hold parameters themselves, in order. The last ones are what a plain model's head usually is:
    offered in messages, never used as a guess (a model's last parametrised module can as well be a norm)."""
    return [name for name, module in model.named_modules()
            if name and any(True for _ in module.parameters(recurse=False))]


def head_module_names(model: nn.Module) -> list[str]:
    """The ``head`` preset: the task head plus a pooler that only the head uses.

    BERT-style classifiers read ``bert.pooler``'s output; it lives inside the body but serves nothing else, and
    in checkpoints trained for other objectives (sentence-transformers) it was never trained for the task. Left
    frozen with the body, "train the head only" stays at chance accuracy, so it belongs to the head here.
    ``reset_head`` still replaces only the task head itself (``task_head_names``).
    """
    inner, prefix = unwrap(model)
    if inner is not model:
        return [f"{prefix}.{n}" if prefix else n for n in head_module_names(inner)]
    heads = task_head_names(model)
    base = getattr(model, "base_model", None)
    pooler = getattr(base, "pooler", None) if isinstance(base, nn.Module) and base is not model else None
    if isinstance(pooler, nn.Module) and has_params(pooler):
        base_name = next((n for n, m in model.named_children() if m is base), None)
        if base_name:
            heads = [f"{base_name}.pooler"] + heads
    return heads


@dataclass(frozen=True)
class BlockList:
    """A container of repeated blocks, e.g. ``bert.encoder.layer`` with 12 ``BertLayer``s."""

    name: str
    block_type: str
    count: int

    def block(self, i: int) -> str:
        return f"{self.name}.{i}"


def block_lists(model: nn.Module) -> list[BlockList]:
    """Every outermost ModuleList/Sequential of >= 2 children of one class that all have parameters.

    Encoder-decoder models have two (encoder and decoder stacks); a nested list inside a block is
    not reported separately.
    """
    found: list[BlockList] = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        if any(name.startswith(f.name + ".") for f in found):
            continue
        kids = list(module.children())
        types = {type(k) for k in kids}
        if len(types) == 1 and all(has_params(k) for k in kids):
            found.append(BlockList(name, type(kids[0]).__name__, len(kids)))
    return found


def repeated_units(model: nn.Module) -> list[list[str]]:
    """For ``top:N``: each stack of the model as its units in order. A CNN's stages are units (plain containers
    numbered alike, as torchvision's and timm's ResNet ``layer1``..``layer4`` or an EfficientNet's ``blocks.0``..):
    ``top:1`` is the last stage, as a CNN's "top layers" are meant, however many blocks each holds. Otherwise a block
    list's blocks are the units (a transformer's layers); encoder and decoder stacks stay apart."""
    stacks: list[list[str]] = []
    covered: list[str] = []
    for name, module in model.named_modules():
        if is_under(name, covered):
            continue
        groups: dict[str, list[str]] = {}
        for child_name, child in module.named_children():
            numbered = re.fullmatch(r"(\D*)\d+", child_name)
            if numbered and type(child) in (nn.Sequential, nn.ModuleList) and has_params(child):
                groups.setdefault(numbered[1], []).append(f"{name}.{child_name}" if name else child_name)
        for units in groups.values():
            if len(units) >= 2:
                stacks.append(units)
                covered += units
    for bl in block_lists(model):
        if not is_under(bl.name, covered) and not any(c.startswith(bl.name + ".") for c in covered):
            stacks.append([bl.block(i) for i in range(bl.count)])
    return stacks


def modules_after(model: nn.Module, name: str) -> list[str]:
    """Siblings registered after ``name`` in each ancestor below the root (final norms, poolers).

    For ``bert.encoder.layer`` this is ``bert.pooler``; for ``transformer.h`` it is ``transformer.ln_f``.
    """
    modules = dict(model.named_modules())
    parts = name.split(".")
    out = []
    for depth in range(len(parts) - 1, 0, -1):
        parent_name = ".".join(parts[:depth])
        child = parts[depth]
        seen = False
        for sib_name, sib in modules[parent_name].named_children():
            if seen and has_params(sib):
                out.append(f"{parent_name}.{sib_name}")
            seen = seen or sib_name == child
    return out


def qkv_module_names(model: nn.Module) -> list[str]:
    """Attention query/key/value projections (fused ones included) that are Linear-like."""
    return [
        name for name, module in model.named_modules()
        if name.split(".")[-1] in QKV_NAMES and is_linear_like(module)
    ]


def embedding_module_names(model: nn.Module) -> list[str]:
    """Input embedding modules: every ``nn.Embedding`` plus modules called ``embeddings``.

    The output head is left out even when tied to the input embeddings: the tie is reported by the
    freeze report instead.
    """
    heads = tuple(task_head_names(model))
    out = []
    for name, module in model.named_modules():
        if not name or is_under(name, heads):
            continue
        if isinstance(module, nn.Embedding) or name.split(".")[-1] in ("embeddings", "embed_positions"):
            if not any(name.startswith(o + ".") for o in out):
                out.append(name)
    return out


def embeddings_of(model: nn.Module, side: str = "input") -> nn.Module | None:
    """The model's input (or ``side="output"``) embedding layer as transformers exposes it, or None: a vision or
    audio model has none, and transformers raises NotImplementedError for those instead of returning None."""
    get = getattr(model, f"get_{side}_embeddings", None)
    try:
        found = get() if callable(get) else None
    except (AttributeError, NotImplementedError):
        return None
    return found if isinstance(found, nn.Module) else None

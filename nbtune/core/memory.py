"""A rough estimate of training memory: weights, gradients, AdamW state and activations.

Numbers only; rendering lives in ``nbtune.render``. The estimate is meant to answer "will this fit
and what should I change", not to predict the allocator to the megabyte.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .architecture import block_lists, embedding_module_names
from .params import ParamIndex

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass
class MemoryEstimate:
    """Estimated bytes for one training step with AdamW. ``activations`` is None when unknown."""

    weights: int
    gradients: int
    optimizer: int
    activations: int | None
    batch_size: int
    seq_len: int
    assumptions: str

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + (self.activations or 0)


def _config_dims(model: nn.Module) -> tuple[int, int, int, int] | None:
    """(hidden, layers, heads, vocab) from a transformers config, if the model has one."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    get = lambda *keys: next((getattr(cfg, k) for k in keys if getattr(cfg, k, None)), None)  # noqa: E731
    hidden = get("hidden_size", "n_embd", "d_model", "dim")
    layers = get("num_hidden_layers", "n_layer", "num_layers")
    heads = get("num_attention_heads", "n_head", "num_heads")
    vocab = get("vocab_size") or 0
    if not (hidden and layers and heads):
        return None
    if getattr(cfg, "is_encoder_decoder", False):
        layers += get("num_decoder_layers") or layers
    return int(hidden), int(layers), int(heads), int(vocab)


def _layers_needing_activations(model: nn.Module, index: ParamIndex, total_layers: int) -> int:
    """How many blocks must keep activations for backward: those from the lowest trainable block up.

    Autograd stores activations only where a gradient must flow, i.e. above the first trainable
    parameter. A trainable embedding means every block.
    """
    trainable = {n for n, p in index.params.items() if p.requires_grad}
    if not trainable:
        return 0
    for emb in embedding_module_names(model):
        if any(n in trainable for n in index.under(emb)):
            return total_layers
    lists = block_lists(model)
    if not lists:
        return total_layers
    needed = 0
    for bl in lists:
        lowest = next(
            (i for i in range(bl.count) if any(n in trainable for n in index.under(bl.block(i)))),
            None,
        )
        if lowest is not None:
            needed += bl.count - lowest
    # Encoder-decoder: gradients into the decoder also flow back through all of the encoder
    # when anything in the encoder trains; the per-list count above already covers that case.
    return needed


def estimate_memory(model: nn.Module, batch_size: int = 8, seq_len: int = 128,
                    compute_dtype: str | torch.dtype | None = None) -> MemoryEstimate:
    """Estimate training memory for the current freeze state.

    Weights: every parameter and buffer at its dtype. Gradients: trainable parameters at their
    dtype. AdamW: two moments per trainable parameter. Activations (transformers configs only):
    Korthikanti et al. 2022, ``s*b*h*(34 + 5*a*s/h)`` bytes per layer at 16-bit, scaled to the compute
    dtype, for the layers that need them, plus the logits of a language-model head.
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError("batch_size and seq_len must be positive integers")
    index = ParamIndex(model)
    weights = sum(p.numel() * p.element_size() for p in index.params.values())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    grads = sum(p.numel() * p.element_size() for p in index.params.values() if p.requires_grad)
    optimizer = 2 * grads  # exp_avg and exp_avg_sq, same dtype as the parameter

    if compute_dtype is None:
        first = next(iter(index.params.values()), None)
        compute_dtype = first.dtype if first is not None else torch.float32
    dtype_name = str(compute_dtype).replace("torch.", "")
    act_bytes = _DTYPE_BYTES.get(dtype_name, 4)

    dims = _config_dims(model)
    activations = None
    assumptions = f"AdamW, batch {batch_size} x {seq_len} tokens, {dtype_name} compute"
    if dims:
        hidden, layers, heads, vocab = dims
        need = _layers_needing_activations(model, index, layers)
        per_layer_16bit = seq_len * batch_size * hidden * (34 + 5 * heads * seq_len / hidden)
        activations = int(need * per_layer_16bit * act_bytes / 2)
        head_out = vocab if _is_lm(model) else hidden
        if any(p.requires_grad for p in index.params.values()):
            activations += batch_size * seq_len * head_out * act_bytes * 2  # logits and their grad
        assumptions += f"; activations kept in {need} of {layers} layers, no gradient checkpointing"
    else:
        assumptions += "; activations not estimated (no transformer config to read sizes from)"
    return MemoryEstimate(weights, grads, optimizer, activations, batch_size, seq_len, assumptions)


def _is_lm(model: nn.Module) -> bool:
    name = type(model).__name__
    return name.endswith(("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForConditionalGeneration"))

"""Loading to fit: 4- and 8-bit weights through bitsandbytes, the dtype a language model loads in, gradient
checkpointing, and merging an adapter into a quantized base.

bitsandbytes does the quantization (NF4 with double quantization, as QLoRA does it, or LLM.int8()); transformers
applies it while loading (``BitsAndBytesConfig``) and peft prepares the result for training
(``prepare_model_for_kbit_training``). nbtune chooses the settings for the device and keeps the session's
bookkeeping (counts, memory, freezing) right for packed weights.
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

import torch
from torch import nn

from nbtune.core.common.errors import ModelLoadError, NbtuneError
from nbtune.core.common.quiet import quietly
from nbtune.core.model.architecture import unwrap
from nbtune.core.model.params import count_params
from nbtune.core.model.precision import compute_dtype, resolve_precision
from nbtune.render.format import human_bytes

QUANTIZE = ("4bit", "8bit")
QUANTIZED_PARAM_CLASSES = ("Params4bit", "Int8Params")


def is_quantized_param(param: torch.Tensor) -> bool:
    """True for a bitsandbytes weight (packed 4-bit or int8): it cannot take gradients, only adapters around it."""
    return type(param).__name__ in QUANTIZED_PARAM_CLASSES


def quantization_of(model: nn.Module) -> str | None:
    """``"4bit"``, ``"8bit"`` or None: how the model's weights were loaded."""
    for param in model.parameters():
        name = type(param).__name__
        if name == "Params4bit":
            return "4bit"
        if name == "Int8Params":
            return "8bit"
    return None


def load_device() -> torch.device:
    """Where a quantized model is put while loading: bitsandbytes quantizes on the device that will run it."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype_for(device: torch.device) -> torch.dtype:
    """The dtype 4-bit layers compute in: bf16 where the GPU has it natively, fp16 on older GPUs (T4), fp32 on
    CPUs (the same rule as training's ``precision="auto"``)."""
    return compute_dtype(resolve_precision("auto", device), torch.float32)


def check_quantize(quantize: str | None) -> str | None:
    """The validated setting; a clear error for an unknown value or a missing bitsandbytes."""
    if quantize is None or quantize is False:
        return None
    value = str(quantize).lower().replace("-", "").replace("_", "")
    value = {"4": "4bit", "8": "8bit", "nf4": "4bit", "int8": "8bit"}.get(value, value)
    if value not in QUANTIZE:
        raise ModelLoadError(f"quantize must be '4bit', '8bit' or None; got {quantize!r}.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(f"quantize={quantize!r} needs bitsandbytes, which is not installed: "
                             "`pip install bitsandbytes` (or `pip install nbtune[llm]`), then load again.")
    return value


def quantization_config(quantize: str, device: torch.device):
    """transformers' ``BitsAndBytesConfig`` for ``quantize``: NF4 with double quantization (QLoRA's choice) and the
    device's compute dtype for 4-bit; LLM.int8() for 8-bit."""
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype_for(device))


def default_dtype(generative: bool, quantize: str | None) -> str | torch.dtype:
    """What ``load(dtype=None)`` means: a language model on a GPU (or quantized) keeps the checkpoint's 16-bit dtype
    ("auto"), since float32 doubles the memory of the weights for nothing; everything on a CPU, and encoder models
    everywhere, load in float32 (CPUs compute half precision slowly, and small models train best in float32 with
    mixed precision from the trainer)."""
    if quantize:
        return compute_dtype_for(load_device())
    if generative and torch.cuda.is_available():
        return "auto"
    return torch.float32


def prepare_for_kbit_training(model: nn.Module) -> nn.Module:
    """peft's preparation of a quantized model: everything frozen, norms in float32. Gradient checkpointing is
    ``set_gradient_checkpointing``'s, as for any model."""
    from peft import prepare_model_for_kbit_training

    for module in model.modules():
        # bitsandbytes 0.49-0.50 repacks a 4-bit layer's weight for its CPU inference kernel on the first forward
        # without gradients (evaluate, generate, a probe), and from then on backward through the layer yields no
        # gradient: training silently stops learning (measured: the loss stays constant). The layer's own switch
        # for that kernel is turned off; GPUs never take that path.
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # The weights that stay unquantized (embeddings, norms, a head) are views into transformers' memory-mapped
    # checkpoint, and they keep the whole mapping alive with every page quantization read: SmolLM2's 28M such
    # parameters held 405 MiB of the 538 MiB float32 file resident after a 4-bit load. Owned copies release it.
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if not is_quantized_param(tensor):
                tensor.data = tensor.data.clone()
    return model


def set_gradient_checkpointing(model: nn.Module, on: bool) -> None:
    """Recompute each block's activations in backward instead of keeping them (transformers' own switch).

    Non-reentrant checkpointing: gradients reach adapters and later layers even when the embeddings are frozen
    (the reentrant kind needs inputs that require grad, hence peft's ``enable_input_require_grads`` hook)."""
    inner, _ = unwrap(model)
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise NbtuneError(f"{type(inner).__name__} does not support gradient checkpointing in transformers; "
                          "lower batch_size or max_length instead.")
    # transformers 5.x renamed the switch "activation checkpointing" (the old names warn); 4.x has only the old
    if on:
        if hasattr(inner, "activation_checkpointing_enable"):
            inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        config = getattr(inner, "config", None)
        if config is not None and getattr(config, "use_cache", False):
            config.use_cache = False  # a cache is useless in training and transformers warns about it each step
    else:
        (getattr(inner, "activation_checkpointing_disable", None) or inner.gradient_checkpointing_disable)()
        if getattr(inner, "config", None) is not None:
            inner.config.use_cache = True


def gradient_checkpointing_on(model: nn.Module) -> bool:
    """Whether the model recomputes block activations in backward."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


@quietly  # transformers logs the dtype it de-quantizes to; peft warns about a renamed transformers property
def merge_into_dequantized(peft_model, active: str) -> tuple[nn.Module, list[str]]:
    """Merge adapter ``active`` of a model whose base is 4/8-bit: the base is de-quantized first (bitsandbytes'
    own de-quantization, through transformers' ``dequantize``), then the adapter is merged into that
    full-precision copy. Merging into the packed weights would round the update away at 4 bits."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    quantize = quantization_of(peft_model)
    config = copy.deepcopy(peft_model.peft_config[active])
    config.inference_mode = False
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model, adapter_name=active).items()}
    base = peft_model.unload()  # the base with its bitsandbytes layers, without the adapter's
    dtype = compute_dtype_for(next(base.parameters()).device)
    base = base.dequantize(dtype=dtype)
    fresh = get_peft_model(base, config, adapter_name=active)
    set_peft_model_state_dict(fresh, state, adapter_name=active)
    merged = fresh.merge_and_unload()
    for param in merged.parameters():
        param.requires_grad_(False)
    size = human_bytes(count_params(merged).total_bytes)
    return merged, [f"the {quantize} base was de-quantized to {str(dtype).replace('torch.', '')} and the adapter "
                    f"merged into that full-precision copy ({size}): save() writes it as ordinary "
                    "safetensors, loadable without bitsandbytes"]


def describe(quantize: str | None, device: torch.device, gradient_checkpointing: bool) -> list[str]:
    """Notes for the session on how it was loaded to fit."""
    notes: list[str] = []
    if quantize == "4bit":
        notes.append(f"weights quantized to 4 bits (NF4, double quantization) by bitsandbytes on {device.type}, "
                     f"computing in {str(compute_dtype_for(device)).replace('torch.', '')}; packed weights never train: "
                     "attach an adapter (s.add_lora()) to train them")
    elif quantize == "8bit":
        notes.append(f"weights quantized to 8 bits (LLM.int8()) by bitsandbytes on {device.type}; packed "
                     "weights never train: attach an adapter (s.add_lora()) to train them")
    if gradient_checkpointing:
        notes.append("gradient checkpointing on (non-reentrant): blocks recompute their activations in backward")
    return notes


def load_kwargs(quantize: str | None) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments for a quantized load (the device the weights are quantized on)."""
    if not quantize:
        return {}
    device = load_device()
    return {"quantization_config": quantization_config(quantize, device), "device_map": {"": str(device)}}

"""Which mixed precision a run uses, decided in one place, and the autocast context that applies it.

``precision="auto"``:

- CUDA: bf16 autocast only where the GPU computes bf16 natively (compute capability 8.0+: A100, L4, H100, ...).
  ``torch.cuda.is_bf16_supported()`` also says True on a T4 (7.5) through emulation, which is slower than fp16
  there; Colab's and Kaggle's free T4 and P100 therefore get fp16 with loss scaling.
- CPU: bf16 autocast where the CPU has bf16 instructions (AVX512-BF16 or AMX) and the model is wide enough for
  them to pay: measured on a 2-core AVX512-BF16 CPU (fused AdamW, batch 32 x 40 tokens, a step of a BERT of
  hidden size h), bf16 over fp32 was 0.85x at h=32, 1.16x at h=64, 1.5x at 128, 1.7x at 256-768. Below
  ``CPU_BF16_MIN_WIDTH`` the casts cost more than they save. Elsewhere fp32.

accelerate fixes mixed precision for the life of a process; a notebook trains several models in one kernel, so on
CPU (where bf16 needs no loss scaling) the run's autocast is entered here, per run, and the Accelerator stays fp32.
"""

from __future__ import annotations

import contextlib
import statistics

import torch

from nbtune.core.model.architecture import hidden_size

NATIVE_BF16_CAPABILITY = (8, 0)
CPU_BF16_MIN_WIDTH = 128

_NAMES = {"no": "fp32", "bf16": "bf16 mixed precision", "fp16": "fp16 mixed precision with loss scaling"}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (x86 AVX512-BF16 or AMX). torch exposes the check only under
    private names: if they go away, the answer is False and CPUs train in fp32 as before."""
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(torch.cpu, check, None)
        try:
            if probe is not None and probe():
                return True
        except Exception:  # a torch build without the probe's backing code
            continue
    return False


def model_width(model: torch.nn.Module | None) -> int | None:
    """The model's hidden size (config), else the median input width of its Linear layers; None if unknown."""
    if model is None:
        return None
    configured = hidden_size(model)
    if configured:
        return configured
    widths = [m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return int(statistics.median(widths)) if widths else None


def resolve_precision(precision: str, device: str | torch.device | None = None,
                      model: torch.nn.Module | None = None) -> str:
    """``"auto"`` -> ``"bf16"``, ``"fp16"`` or ``"no"`` for ``device`` (default: this process's CUDA device, if
    any) and ``model`` (on CPU, bf16 needs a model of known width ``>= CPU_BF16_MIN_WIDTH``); any other value is
    returned as given."""
    if precision != "auto":
        return precision
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        width = model_width(model)
        if width is not None and width >= CPU_BF16_MIN_WIDTH:
            return "bf16"
    return "no"


def describe_precision(precision: str) -> str:
    """A resolved precision in words, for headers and logs ("no" -> "fp32")."""
    return _NAMES.get(precision, precision)


def autocast(runtime, precision: str):
    """The autocast context of a step or evaluation in ``precision`` (resolved) on ``runtime`` (an Accelerator, or
    evaluation's local runtime). CPU bf16 is entered here, per run (see the module docstring); everything else is
    accelerate's, whose mixed precision was fixed when the process made its Accelerator."""
    if runtime.device.type == "cpu":
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        if precision == "no":
            return contextlib.nullcontext()
    return runtime.autocast()


def compute_dtype(precision: str, param_dtype: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype activations are computed in under ``precision`` (already resolved)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, param_dtype)

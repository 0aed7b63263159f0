"""Which mixed precision ``precision="auto"`` means on this machine, decided in one place.

bf16 autocast only where the GPU computes bf16 natively (compute capability 8.0+: A100, L4, H100, ...).
``torch.cuda.is_bf16_supported()`` also says True on a T4 (7.5) through emulation, which is slower than fp16
there; Colab's and Kaggle's free T4 and P100 therefore get fp16 with loss scaling. CPUs train in fp32.
"""

from __future__ import annotations

import torch

NATIVE_BF16_CAPABILITY = (8, 0)


def resolve_precision(precision: str, device: str | torch.device | None = None) -> str:
    """``"auto"`` -> ``"bf16"``, ``"fp16"`` or ``"no"`` for ``device`` (default: this process's CUDA device,
    if any); any other value is returned as given."""
    if precision != "auto":
        return precision
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type != "cuda":
        return "no"
    if torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY:
        return "bf16"
    return "fp16"


def compute_dtype(precision: str, param_dtype: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype activations are computed in under ``precision`` (already resolved)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, param_dtype)

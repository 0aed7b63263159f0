"""Tensors: inputs given ready-made (a plain ``nn.Module``'s ``(input, label)`` pairs or dicts of tensors)."""

from __future__ import annotations

from typing import Any

import torch

from nbtune.core.data.modality import Modality, register_modality


@register_modality
class TensorModality(Modality):
    name = "tensor"
    description = "tensors built by the user, passed to the model as they are"

    def encode(self, session, value: Any, train: bool, rng) -> dict[str, Any]:
        return {"input": torch.as_tensor(value)}

    def is_single(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and value.ndim <= 1

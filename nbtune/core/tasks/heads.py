"""Replacing or re-initialising the task head (``Session.reset_head``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nbtune.core.common.errors import HeadError
from nbtune.core.model.architecture import embeddings_of, is_linear_like, task_head_names
from nbtune.core.tasks import check_labels, is_labelled, label_config


@dataclass
class HeadChange:
    """What ``reset_head`` did: which module, old and new weight shapes, label names."""

    name: str
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    labels: list[str]

    def __repr__(self) -> str:
        return (f"HeadChange({self.name}: {list(self.old_shape)} -> {list(self.new_shape)} fresh weights, "
                f"labels={self.labels})")


def _init_linear(linear: nn.Module, std: float | None) -> None:
    """BERT-style init (normal(0, initializer_range), zero bias) for transformers; PyTorch's default otherwise."""
    with torch.no_grad():
        if std is None:
            linear.reset_parameters()
        else:
            linear.weight.normal_(0.0, std)
            if getattr(linear, "bias", None) is not None:
                linear.bias.zero_()


def reset_head(model: nn.Module, task: str | None, num_labels: int | None = None,
               labels: list[str] | None = None) -> HeadChange:
    """Give ``model`` a fresh task head, ``num_labels`` wide (or as wide as before).

    Every Linear in the head is re-initialised; the last one is rebuilt with the new output size. Config,
    ``model.num_labels`` and label names are updated so the model's own loss uses the new size.
    Validation happens before anything is changed.
    """
    num_labels, labels = check_labels(num_labels, labels, HeadError)
    if num_labels is not None:
        if task is not None and not is_labelled(task):
            raise HeadError(f"A {task} head is sized by its vocabulary or spans, not num_labels; "
                            "call reset_head() without num_labels to re-initialise it.")
    heads = task_head_names(model)
    linears = [(f"{h}.{n}" if n else h, m) for h in heads for n, m in model.get_submodule(h).named_modules()
               if is_linear_like(m)]
    if not linears:
        raise HeadError(f"Found no Linear layer in the head ({heads or 'none found'}) of {type(model).__name__}.")
    last_name, last = linears[-1]
    emb = embeddings_of(model)
    if emb is not None and getattr(emb, "weight", None) is last.weight:
        raise HeadError(
            f"{last_name} is tied to the input embeddings; re-initialising it would erase them. "
            "Untie them first (config.tie_word_embeddings=False) or train the head as it is."
        )
    if isinstance(last, nn.Linear):
        in_f, out_old = last.in_features, last.out_features
    else:  # GPT-2 Conv1D stores (in, out)
        in_f, out_old = last.weight.shape
    out_new = num_labels or out_old
    config = getattr(model, "config", None)
    std = getattr(config, "initializer_range", None) if config is not None else None

    # Validated: now change the model.
    old_shape = tuple(last.weight.shape)
    for _, linear in linears[:-1]:
        _init_linear(linear, std)
    new = nn.Linear(in_f, out_new, bias=getattr(last, "bias", None) is not None,
                    dtype=last.weight.dtype, device=last.weight.device)
    _init_linear(new, std)
    parent_name, _, attr = last_name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)

    names = labels or (
        [config.id2label.get(i, f"LABEL_{i}") for i in range(out_new)]
        if config is not None and out_new == out_old and getattr(config, "id2label", None)
        else [f"LABEL_{i}" for i in range(out_new)]
    )
    if config is not None and is_labelled(task):
        for key, value in label_config(task, out_new, names).items():
            setattr(config, key, value)
    if hasattr(model, "num_labels"):
        model.num_labels = out_new
    return HeadChange(last_name, old_shape, tuple(new.weight.shape), names if is_labelled(task) else [])

"""Training a plain ``nn.Module`` (no transformers head, no tokenizer): examples are ``(input, label)`` pairs or
dicts of tensors, the loss is the model's own ``.loss`` when it returns one, else cross-entropy on its output."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nbtune.core.data.features import DataError, Features
from nbtune.core.tasks.base import TaskHandler


class _Output:
    def __init__(self, loss, logits):
        self.loss, self.logits = loss, logits


class ModuleTask(TaskHandler):
    name = "module"
    main_metric = "accuracy"
    greater_is_better = True
    raw_data = True  # examples are tensors, not a table
    modality = "tensor"

    def prepare(self, session, data, cfg, require_labels: bool = True) -> Features:
        if isinstance(data, torch.utils.data.DataLoader):
            data = data.dataset
        try:
            examples = [data[i] for i in range(len(data))]
        except TypeError:
            raise DataError("For a plain nn.Module, pass a torch Dataset or a list of (input, label) pairs or of dicts "
                            "of tensors (keyword arguments of forward, plus 'labels').") from None
        if not examples:
            raise DataError("The data is empty: give at least one example.")
        rows = []
        for i, ex in enumerate(examples):
            if isinstance(ex, dict):
                row = dict(ex)
            elif isinstance(ex, (tuple, list)) and len(ex) == 2:
                row = {"input": ex[0], "labels": ex[1]}
            else:
                raise DataError(f"Example {i} is a {type(ex).__name__}; use (input, label) or a dict of tensors.")
            if require_labels and "labels" not in row:
                raise DataError(f"Example {i} has no 'labels'; add them to evaluate or train.")
            rows.append({k: torch.as_tensor(v) for k, v in row.items()})
        return Features(rows, [1] * len(rows))

    def collator(self, session, cfg):
        return torch.utils.data.default_collate

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = model(inputs["input"]) if set(inputs) == {"input"} else model(**inputs)
        loss = getattr(out, "loss", None) if not isinstance(out, dict) else out.get("loss")
        logits = out if isinstance(out, torch.Tensor) else getattr(out, "logits", None)
        if loss is None and "labels" in batch:
            loss = nn.functional.cross_entropy(logits, batch["labels"])
        return _Output(loss, logits)

    def collect(self, outputs, batch, store) -> None:
        if outputs.logits is not None and "labels" in batch:
            store.setdefault("pred", []).append(outputs.logits.argmax(-1).cpu())
            store.setdefault("gold", []).append(batch["labels"].cpu())

    def metrics(self, store, loss: float, features=None) -> dict[str, Any]:
        out = {"loss": loss}
        if "gold" in store:
            pred, gold = torch.cat(store["pred"]), torch.cat(store["gold"])
            out["accuracy"] = float((pred == gold).float().mean())
        return out

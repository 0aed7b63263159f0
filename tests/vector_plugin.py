"""A plug-in written outside nbtune, as a user or another package would: a modality (fixed-length float vectors,
with random noise as a training-time augmentation), a task on it (vector regression), an objective (Huber loss with
a setting of its own) and a transformers model registered with ``AutoConfig``/``AutoModel``. Importing the module
registers them all; ``tests/test_plugin_proof.py`` drives them through the whole of nbtune."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from nbtune.core.common.errors import DataError, TrainConfigError
from nbtune.core.data.features import Features
from nbtune.core.data.modality import Modality, register_modality
from nbtune.core.objectives.base import Objective, ObjectiveOutput
from nbtune.core.objectives.registry import register_objective
from nbtune.core.tasks.base import TaskHandler
from nbtune.core.tasks.registry import register_task

PROBES: list[int] = []  # one entry per probe batch built: attaching an adapter ran the model on one
ENCODED: list[tuple[int, bool]] = []  # one entry per example encoded: (its width, whether for training)


# -- the model ---------------------------------------------------------------------------------------------------
class VectorConfig(PretrainedConfig):
    model_type = "nbtune-toy-vectors"

    def __init__(self, width: int = 6, hidden: int = 16, **kwargs):
        self.width, self.hidden = width, hidden
        super().__init__(**kwargs)


class VectorBody(nn.Module):
    def __init__(self, config: VectorConfig):
        super().__init__()
        self.inp = nn.Linear(config.width, config.hidden)
        self.mid = nn.Linear(config.hidden, config.hidden)

    def forward(self, vector):
        return torch.tanh(self.mid(torch.tanh(self.inp(vector))))


class VectorRegressor(PreTrainedModel):
    config_class = VectorConfig
    base_model_prefix = "body"

    def __init__(self, config: VectorConfig):
        super().__init__(config)
        self.body = VectorBody(config)
        self.head = nn.Linear(config.hidden, 1)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, 0.3)
            module.bias.data.zero_()

    def forward(self, vector=None, labels=None, **kwargs):
        prediction = self.head(self.body(vector)).squeeze(-1)
        loss = nn.functional.mse_loss(prediction, labels.to(prediction.dtype)) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=prediction)


AutoConfig.register(VectorConfig.model_type, VectorConfig)
AutoModel.register(VectorConfig, VectorRegressor)


# -- the modality ------------------------------------------------------------------------------------------------
@register_modality
class VectorModality(Modality):
    name = "vector"
    description = "fixed-length float vectors; training adds Gaussian noise (an augmentation)"
    deterministic = False  # the noise differs per epoch: encoded per item, seeded by (seed, epoch, example)
    noise = 0.05

    def read(self, value: Any, where: str) -> np.ndarray:
        if isinstance(value, str):  # a vector kept as a file, as media are (see store)
            value = np.load(value)
        array = np.asarray(value, dtype=np.float32)
        if array.ndim != 1 or not np.isfinite(array).all():
            raise DataError(f"{where.capitalize()} is not a finite 1-d vector (got {value!r}).")
        return array

    def encode(self, session, value: np.ndarray, train: bool, rng) -> dict[str, Any]:
        ENCODED.append((len(value), train))
        if rng is not None:
            value = value + rng.normal(0.0, self.noise, size=value.shape).astype(np.float32)
        return {"vector": torch.as_tensor(value)}

    def store(self, table, folder: Path):
        """Vectors as ``.npy`` files under ``folder/vectors`` (named by their content: train and eval share the
        folder), the table keeping their relative paths: the way an image or audio modality keeps its media."""
        table = table.copy()
        for column in table.columns:
            if len(table) and table[column].map(lambda v: isinstance(v, (list, np.ndarray))).all():
                (folder / "vectors").mkdir(parents=True, exist_ok=True)
                paths = []
                for value in table[column]:
                    array = np.asarray(value, dtype=np.float32)
                    name = f"vectors/{hashlib.sha1(array.tobytes()).hexdigest()[:16]}.npy"
                    np.save(folder / name, array)
                    paths.append(name)
                table[column] = paths
        return table

    def restore(self, table, folder: Path):
        table = table.copy()
        for column in table.columns:
            values = table[column]
            if len(table) and values.map(lambda v: isinstance(v, str) and v.startswith("vectors/")).all():
                table[column] = [str(folder / v) for v in values]
        return table

    def probe_batch(self, model):
        width = model.get_base_model().config.width if hasattr(model, "get_base_model") else model.config.width
        PROBES.append(width)
        return {"vector": torch.zeros(1, width, device=next(model.parameters()).device)}

    def batch_size(self, batch) -> int:
        return int(batch["vector"].shape[0])

    def is_single(self, value) -> bool:
        return isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) == 1


# -- the task ----------------------------------------------------------------------------------------------------
@register_task
class VectorRegression(TaskHandler):
    name = "vector-regression"
    description = "a number from a vector"
    auto_class = "AutoModel"
    class_suffixes = ("Regressor",)
    new_head = True
    modality = "vector"
    columns = {"vector": ("vector", "x"), "target": ("target", "y")}
    main_metric = "mae"

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        vector_col = self.column(table, "vector", cfg.columns)
        target_col = self.column(table, "target", cfg.columns, required=require_labels)
        modality = self.inputs()
        values = [modality.read(v, f"example {i} of column {vector_col!r}") for i, v in enumerate(table[vector_col])]
        width = session.model.config.width if hasattr(session.model, "config") else None
        if width is not None and any(len(v) != width for v in values):
            raise DataError(f"The model reads vectors of {width} numbers; some examples have another length.")
        extra = [{"labels": float(y)} for y in table[target_col]] if target_col else None
        return self.encoded_per_item(session, values, cfg, extra)

    def collect(self, outputs, batch, store) -> None:
        store.setdefault("pred", []).append(outputs.logits.detach().float().cpu())
        if "labels" in batch:
            store.setdefault("gold", []).append(batch["labels"].detach().float().cpu())

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        out = {"loss": loss}
        if store.get("gold"):
            out["mae"] = float((torch.cat(store["pred"]) - torch.cat(store["gold"])).abs().mean())
        return out

    def predict(self, session, items, batch_size, max_length) -> list[dict[str, Any]]:
        modality = self.inputs()
        batch = modality.collate(session, [modality.encode(session, modality.read(x, "input"), False, None)
                                           for x in items])
        device = next(session.model.parameters()).device
        with torch.inference_mode():
            values = session.model(vector=batch["vector"].to(device)).logits
        return [{"value": float(v)} for v in values.reshape(-1)]


# -- the objective -----------------------------------------------------------------------------------------------
@dataclass
class HuberSettings:
    delta: float = 1.0  # where the loss turns from quadratic to linear

    def __post_init__(self):
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not self.delta > 0:
            raise TrainConfigError(f"delta must be a positive number; got {self.delta!r}.")


@register_objective
class Huber(Objective):
    name = "huber"
    description = "Huber (smooth L1) loss on the prediction, robust to outlying targets"
    settings_class = HuberSettings
    tasks = ("vector-regression",)

    def loss(self, model, batch, task, prepared) -> ObjectiveOutput:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        outputs = model(**inputs)
        loss = None
        metrics = {}
        if "labels" in batch:
            error = outputs.logits - batch["labels"].to(outputs.logits.dtype)
            loss = nn.functional.huber_loss(outputs.logits, batch["labels"].to(outputs.logits.dtype),
                                            delta=self.settings.delta)
            metrics["abs_error"] = error.detach().abs().mean()
        return ObjectiveOutput(loss, metrics, outputs)

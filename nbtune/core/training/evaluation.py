"""Evaluation over prepared features, and data preparation shared by training and ``Session.evaluate``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nbtune.core.common.errors import DataError
from nbtune.core.data.batching import make_loader, to_device
from nbtune.core.data.features import Features, load_table
from nbtune.core.model.precision import autocast
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.runtime import eval_precision


def evaluate_features(session, handler, objective, features: Features, cfg: TrainConfig,
                      accelerator) -> dict[str, float]:
    """Loss (the objective's) and the task's and the objective's metrics over ``features``, in eval and inference
    mode.

    Batches go longest first in length order, so padding is near zero; what the task collects per example is put
    back in input order before its metrics see it (extractive QA maps windows to examples by position).
    """
    batch_size = handler.eval_batch(cfg.batch_size, cfg.eval_batch_size)
    loader = make_loader(features, handler.eval_collator(session, cfg), batch_size, cfg.seed, shuffle=False,
                         group_by_length=True)
    order = loader.batch_sampler.order()
    model = session.model
    precision = eval_precision(session, accelerator)
    was_training = model.training
    session.eval_mode()
    store: dict[str, list] = {}
    loss_sum, count = 0.0, 0
    try:
        with torch.inference_mode():
            for batch in loader:
                batch = to_device(batch, accelerator.device)
                with autocast(accelerator, precision):
                    out = objective(model, batch, handler)
                n = handler.batch_size_of(batch)
                if out.loss is not None:
                    loss_sum += float(out.loss) * n
                    count += n
                handler.collect(out.outputs, batch, store)
                objective.collect(out, batch, store)
        in_input_order(store, order)
        metrics = handler.metrics(store, loss_sum / count if count else float("nan"), features)
        metrics.update(objective.metrics(store))
        if cfg.eval_generate:
            metrics.update(handler.generation_metrics(session, features, cfg))
    finally:
        if was_training:
            session.train_mode()
    return metrics


def in_input_order(store: dict[str, list], order: list[int]) -> None:
    """Put back in input order the lists that hold one entry per example (collected in ``order``). Other lists hold
    per-batch values (a batch's logits and labels together, token-loss sums) whose metrics do not depend on order."""
    position = {index: k for k, index in enumerate(order)}
    for key, values in store.items():
        if len(values) == len(order):
            store[key] = [values[position[i]] for i in range(len(order))]


def table_of(handler, data, split: str | None = None):
    """The data as one table (as given, for tasks that take raw Python data). A file's table goes through its
    modality's ``restore``: media a run folder or an export stored beside it are found again."""
    if handler.raw_data:
        return data
    table = handler.inputs().source(data, split)
    if table is not None:
        return table
    table = load_table(data, split=split)
    if isinstance(data, (str, os.PathLike)):
        table = handler.inputs().restore(table, Path(data).expanduser().resolve().parent)
    return table


def prepare_data(session, handler, data, cfg: TrainConfig, split: str | None, what: str) -> Features:
    if handler.raw_data:
        return handler.prepare(session, data, cfg, require_labels=True)
    table = table_of(handler, data, split)
    if len(table) == 0:
        raise DataError(f"The {what} data has no rows.")
    return handler.prepare(session, table, cfg, require_labels=True)


def eval_data_from(train_data, eval_data, handler=None):
    """With no eval data, a DatasetDict's validation split if it has one, or the split the task's modality finds
    in the data (an image folder's ``val/``)."""
    if eval_data is None and type(train_data).__name__ == "DatasetDict":
        for name in ("validation", "dev", "test"):
            if name in train_data:
                return train_data, name
    if eval_data is None and handler is not None and not handler.raw_data:
        split = handler.inputs().eval_split(train_data)
        if split is not None:
            return train_data, split
    return eval_data, None

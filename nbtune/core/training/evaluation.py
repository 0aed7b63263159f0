"""Evaluation over prepared features, and data preparation shared by training and ``Session.evaluate``."""

from __future__ import annotations

import torch

from ..errors import DataError
from .config import TrainConfig
from .data import Features, load_table, make_loader
from .precision import autocast
from .runtime import eval_precision


def evaluate_features(session, handler, features: Features, cfg: TrainConfig, accelerator) -> dict[str, float]:
    """Loss and the task's metrics over ``features``, in eval mode, without gradients."""
    loader = make_loader(features, handler.eval_collator(session, cfg), cfg.eval_batch_size or cfg.batch_size * 2,
                         cfg.seed, shuffle=False, group_by_length=False)
    model = session.model
    precision = eval_precision(session, accelerator)
    was_training = model.training
    session.eval_mode()
    store: dict[str, list] = {}
    loss_sum, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in loader:
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                with autocast(accelerator, precision):
                    outputs = handler.forward(model, batch)
                n = handler.batch_size_of(batch)
                if outputs.loss is not None:
                    loss_sum += float(outputs.loss) * n
                    count += n
                handler.collect(outputs, batch, store)
        metrics = handler.metrics(store, loss_sum / count if count else float("nan"), features)
        if cfg.eval_generate:
            metrics.update(handler.generation_metrics(session, features, cfg))
    finally:
        if was_training:
            session.train_mode()
    return metrics


def prepare_data(session, handler, data, cfg: TrainConfig, split: str | None, what: str) -> Features:
    if handler.raw_data:
        return handler.prepare(session, data, cfg, require_labels=True)
    table = load_table(data, split=split)
    if len(table) == 0:
        raise DataError(f"The {what} data has no rows.")
    return handler.prepare(session, table, cfg, require_labels=True)


def eval_data_from(train_data, eval_data):
    """With a DatasetDict and no eval data, use its validation split if it has one."""
    if eval_data is None and type(train_data).__name__ == "DatasetDict":
        for name in ("validation", "dev", "test"):
            if name in train_data:
                return train_data, name
    return eval_data, None

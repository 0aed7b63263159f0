"""What every task module provides to the training loop: prepare, collate, collect, metrics."""

from __future__ import annotations

from typing import Any

import torch

from ..training.data import DataError, Features


class TaskHandler:
    """Base class for one task. Subclasses set ``name``, ``main_metric`` and implement the hooks."""

    name = ""
    main_metric = "loss"
    greater_is_better = False
    raw_data = False  # True: prepare() takes the data as given (tensors), not as a table

    def forward(self, model, batch: dict[str, torch.Tensor]):
        """Run the model on a batch; the result has ``.loss`` (transformers models compute it themselves)."""
        return model(**batch)

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        """Validate columns and labels, tokenize, and return features (raises DataError, changes nothing)."""
        raise NotImplementedError

    def collator(self, session, cfg):
        """A callable turning a list of features into a padded batch of tensors."""
        raise NotImplementedError

    def eval_collator(self, session, cfg):
        """The collator for evaluation (deterministic where training's is random, e.g. MLM masking)."""
        return self.collator(session, cfg)

    def collect(self, outputs, batch: dict[str, torch.Tensor], store: dict[str, list]) -> None:
        """Keep what ``metrics`` needs from one evaluation batch (on the CPU)."""

    def metrics(self, store: dict[str, list], loss: float, features: Features | None = None) -> dict[str, float]:
        return {"loss": loss}

    def generation_metrics(self, session, features: Features, cfg) -> dict[str, float]:
        """Metrics that need generated text (ROUGE, BLEU); none by default."""
        return {}

    def apply(self, session, features: Features) -> None:
        """Changes to the model that the data implies (label names), made only once all data is valid."""

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["input_ids"].shape[0])

    def tokens_of(self, batch: dict[str, torch.Tensor]) -> int:
        mask = batch.get("attention_mask")
        return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class TokenLossTask(TaskHandler):
    """Language-model-style tasks: the evaluation loss is averaged over predicted tokens, not batches.

    The model's loss is a mean over the predicted tokens of a batch; weighting it by their count gives the exact
    average over the whole evaluation set. ``shifted``: causal LMs predict token t+1 from token t.
    """

    shifted = False
    report_perplexity = True

    def collect(self, outputs, batch, store) -> None:
        labels = batch["labels"][:, 1:] if self.shifted else batch["labels"]
        n = int((labels != -100).sum())
        store.setdefault("token_loss", []).append(float(outputs.loss) * n)
        store.setdefault("tokens", []).append(n)

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        import math

        mean = sum(store.get("token_loss", [])) / (sum(store.get("tokens", [])) or 1)
        return {"loss": mean, "perplexity": math.exp(min(mean, 50.0))} if self.report_perplexity else {"loss": mean}


def require_tokenizer(session, task: str) -> Any:
    if session.tokenizer is None:
        raise DataError(f"Training a {task} model on text needs a tokenizer; load the model with one "
                        "(nbtune.load(..., tokenizer='path')) or set session.tokenizer.")
    return session.tokenizer


def texts_of(table, column: str) -> list[str]:
    """The column as strings; a missing or empty text is an error naming the example."""
    values = table[column].tolist()
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v.strip():
            raise DataError(f"Example {i} has no text in column {column!r} (got {v!r}); remove it or fill it in.")
    return values

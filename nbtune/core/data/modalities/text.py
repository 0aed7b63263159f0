"""Text: strings read by the session's tokenizer into token ids; an example's size is its token count."""

from __future__ import annotations

from typing import Any

import torch

from nbtune.core.common.errors import DataError
from nbtune.core.data.modality import Modality, register_modality
from nbtune.core.data.processor import text_view
from nbtune.core.model.architecture import unwrap


@register_modality
class TextModality(Modality):
    name = "text"
    description = "strings, tokenized by the session's tokenizer"

    def read(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where.capitalize()} has no text (got {value!r}); remove it or fill it in.")
        return value

    def encode(self, session, value: str, train: bool, rng) -> dict[str, Any]:
        return dict(self.tokenizer(session)(value, truncation=True))

    def collate(self, session, rows: list[dict[str, Any]]) -> dict[str, Any]:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.tokenizer(session), padding="longest")(rows)

    def size(self, row: dict[str, Any]) -> int:
        return len(row["input_ids"])

    def batch_size(self, batch: dict[str, Any]) -> int:
        return int(batch["input_ids"].shape[0])

    def tokens(self, batch: dict[str, Any]) -> int:
        mask = batch.get("attention_mask")
        return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())

    def probe_batch(self, model: torch.nn.Module) -> dict[str, Any] | None:
        """Three tokens (an encoder-decoder also gets its decoder start token): prefix tuning may break a model
        that this catches."""
        config = getattr(unwrap(model)[0], "config", None)
        if config is None:
            return None
        device = next(model.parameters()).device
        ids = torch.tensor([[1, 2, 3]], device=device) % max(getattr(config, "vocab_size", 4) or 4, 4)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if getattr(config, "is_encoder_decoder", False):
            batch["decoder_input_ids"] = ids[:, :1] * 0 + (getattr(config, "decoder_start_token_id", 0) or 0)
        return batch

    def is_single(self, value: Any) -> bool:
        return isinstance(value, (str, tuple))  # a text, or a (text, text_pair) pair

    @staticmethod
    def tokenizer(session):
        tokenizer = text_view(session.processor)
        if tokenizer is None:
            raise DataError("Text needs a tokenizer; load the model with one (nbtune.load(..., processor='path')) "
                            "or set session.tokenizer.")
        return tokenizer

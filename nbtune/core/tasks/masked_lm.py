"""Masked language modelling on plain text (domain-adaptive pre-training), 15% masking by default."""

from __future__ import annotations

from nbtune.core.data.features import DataError, Features
from nbtune.core.tasks.base import TokenLossTask, require_tokenizer, texts_of
from nbtune.core.tasks.registry import register_task

TEXT = ("text", "content", "document", "sentence")


@register_task
class MaskedLMTask(TokenLossTask):
    name = "masked-lm"
    order = 50
    aliases = ("mlm", "fill-mask")
    description = "masked language modelling (domain adaptation)"
    auto_class = "AutoModelForMaskedLM"
    class_suffixes = ("ForMaskedLM",)
    columns = {"text": TEXT}
    main_metric = "loss"
    greater_is_better = False

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        if tok.mask_token is None:
            raise DataError("This tokenizer has no mask token, so masked-LM training is not possible with it.")
        column = self.column(table, "text", cfg.columns)
        enc = tok(texts_of(table, column), truncation=True, max_length=cfg.max_length, return_special_tokens_mask=True)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask") if k in enc]
        rows = [{k: enc[k][i] for k in keys} for i in range(len(enc["input_ids"]))]
        return Features(rows, self.sizes(rows))

    def _collator(self, session, cfg, seed):
        from transformers import DataCollatorForLanguageModeling

        return DataCollatorForLanguageModeling(session.tokenizer, mlm=True, mlm_probability=cfg.mlm_probability,
                                               pad_to_multiple_of=None, seed=seed)

    def collator(self, session, cfg):
        return self._collator(session, cfg, seed=None)  # the global RNG, which nbtune seeds and checkpoints

    def eval_collator(self, session, cfg):
        return self._collator(session, cfg, seed=cfg.seed)  # the same masks every evaluation: comparable numbers

"""Causal language modelling: plain text, or conversations (chat messages, prompt/response pairs, Alpaca-style
instructions) with the loss on the assistant's tokens only (``chat.py`` renders and masks them)."""

from __future__ import annotations

from nbtune.core.data import chat
from nbtune.core.data.features import DataError, Features
from nbtune.core.data.packing import pack_features, packed_collator
from nbtune.core.model.chunked_loss import chunkable_parts, chunked_causal_lm_loss
from nbtune.core.tasks.base import GenerativeTask, TokenLossTask, require_tokenizer, texts_of
from nbtune.core.tasks.registry import register_task

IGNORE = chat.IGNORE

TEXT = ("text", "content", "document")


@register_task
class CausalLMTask(GenerativeTask, TokenLossTask):
    name = "causal-lm"
    order = 40
    aliases = ("text-generation", "clm", "lm", "sft")
    description = "next-token language modelling, instruction tuning"
    auto_class = "AutoModelForCausalLM"
    class_suffixes = ("ForCausalLM", "LMHeadModel")
    peft_task_type = "CAUSAL_LM"
    columns = {"text": TEXT, "messages": chat.MESSAGE_COLUMNS,
               "prompt": tuple(dict.fromkeys(p for p, _ in chat.PAIRS)), "response": tuple(r for _, r in chat.PAIRS)}
    main_metric = "loss"
    greater_is_better = False
    shifted = True
    chunked_logits = True  # the loss never holds the whole [tokens, vocabulary] logits (memory estimates count so)

    def forward(self, model, batch):
        # With labels, the loss comes from the final hidden states through the output layer in chunks
        # (nbtune.core.model.chunked_loss): the same loss and gradients without the vocabulary-wide logits.
        # No key/value cache in training and evaluation: it is never read, and transformers skips its padding-free
        # mask (packed rows kept apart by their position ids) whenever a cache exists.
        parts = chunkable_parts(model) if "labels" in batch else None
        if parts is not None:
            return chunked_causal_lm_loss(batch, parts)
        return model(**batch, use_cache=False)

    def encode_chats(self, session, table, cfg) -> list[chat.EncodedChat] | None:
        """The table's conversations encoded with their loss masks, or None for plain text."""
        tok = require_tokenizer(session, self.name)
        return chat.encode_table(tok, table, cfg.columns, cfg.chat_template, cfg.loss_on, cfg.max_length)

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        limit = cfg.max_length
        encoded = self.encode_chats(session, table, cfg)
        rows = []
        if encoded is None:
            column = self.column(table, "text", cfg.columns)
            eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
            for ids in tok(texts_of(table, column), truncation=True, max_length=limit - len(eos) if limit else None)["input_ids"]:
                ids = list(ids) + eos
                rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
            return Features(rows, self.sizes(rows))
        # an example with nothing trained adds only compute: skipped, and counted
        rows = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                for e in encoded if e.trained]
        if not rows:
            cause = (f"max_length={limit} cuts off every assistant turn" if any(e.truncated for e in encoded)
                     else "no assistant tokens were found")
            raise DataError(f"Every one of the {len(encoded)} examples has all its labels masked, so training would "
                            f"learn nothing: {cause}. Raise max_length, check the roles, or pass loss_on='all'.")
        return Features(rows, self.sizes(rows),
                        meta={"truncated": sum(e.truncated for e in encoded), "skipped": len(encoded) - len(rows),
                              "chat_template": cfg.chat_template})

    def pack(self, features: Features, cfg) -> Features:
        return pack_features(features, cfg.max_length)

    def apply(self, session, features: Features) -> None:
        """A named chat template used for training becomes the tokenizer's, so generate() and saved copies render
        conversations the way the model learned them."""
        name = features.meta.get("chat_template")
        tok = session.tokenizer
        if name and tok is not None and getattr(tok, "chat_template", None) != chat.NAMED_TEMPLATES[name]:
            tok.chat_template = chat.NAMED_TEMPLATES[name]
            session.notes.append(f"the tokenizer now uses the {name!r} chat template it was trained with")

    def collator(self, session, cfg):
        return packed_collator() if cfg.packing else self.eval_collator(session, cfg)

    def eval_collator(self, session, cfg):
        """Padding per batch (evaluation never packs: its loss is per example)."""
        from transformers import DataCollatorForSeq2Seq

        padding = "max_length" if cfg.pad_to else "longest"
        return DataCollatorForSeq2Seq(session.tokenizer, padding=padding, max_length=cfg.pad_to,
                                      label_pad_token_id=IGNORE)

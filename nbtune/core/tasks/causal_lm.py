"""Causal language modelling: plain text, or prompt/response pairs with the loss on the response only."""

from __future__ import annotations

from ..generation import chat_prompt
from ..training.data import DataError, Features, pick_column
from .base import GenerativeTask, TokenLossTask, require_tokenizer, texts_of
from .registry import register_task

TEXT = ("text", "content", "document")
# (prompt column, response column) pairs tried in order; "instruction" may come with an "input" column.
PAIRS = (("prompt", "response"), ("prompt", "completion"), ("question", "answer"), ("instruction", "output"))
IGNORE = -100


def _chat_parts(tok, prompt: str, response: str) -> tuple[str, str]:
    """(prompt text, response text) rendered with the tokenizer's chat template, or plain when it has none."""
    head, templated = chat_prompt(tok, prompt)  # exactly what generate() feeds the model
    if templated:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        full = tok.apply_chat_template(messages, tokenize=False)
        if full.startswith(head):
            return head, full[len(head):]
    eos = tok.eos_token or ""
    return f"{prompt}\n", f"{response}{eos}"


@register_task
class CausalLMTask(GenerativeTask, TokenLossTask):
    name = "causal-lm"
    order = 40
    aliases = ("text-generation", "clm", "lm", "sft")
    description = "next-token language modelling, instruction tuning"
    auto_class = "AutoModelForCausalLM"
    class_suffixes = ("ForCausalLM", "LMHeadModel")
    peft_task_type = "CAUSAL_LM"
    columns = {"text": TEXT, "prompt": tuple(dict.fromkeys(p for p, _ in PAIRS)), "response": tuple(r for _, r in PAIRS)}
    main_metric = "loss"
    greater_is_better = False
    shifted = True

    def _pair_columns(self, table, cfg) -> tuple[str, str] | None:
        given = cfg.columns
        if "prompt" in given or "response" in given:
            return (pick_column(table, "prompt", (), given), pick_column(table, "response", (), given))
        for prompt, response in PAIRS:
            if prompt in table.columns and response in table.columns:
                return prompt, response
        return None

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        limit = cfg.max_length
        pair = self._pair_columns(table, cfg)
        rows = []
        if pair is None:
            column = self.column(table, "text", cfg.columns)
            eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
            for ids in tok(texts_of(table, column), truncation=True, max_length=limit - len(eos) if limit else None)["input_ids"]:
                ids = list(ids) + eos
                rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
        else:
            prompts = texts_of(table, pair[0])
            if pair[0] == "instruction" and "input" in table.columns:
                extra = table["input"].fillna("").astype(str).tolist()
                prompts = [p if not x.strip() else f"{p}\n\n{x}" for p, x in zip(prompts, extra)]
            responses = texts_of(table, pair[1])
            for i, (prompt, response) in enumerate(zip(prompts, responses)):
                head, tail = _chat_parts(tok, prompt, response)
                head_ids = tok(head, add_special_tokens=getattr(tok, "chat_template", None) is None)["input_ids"]
                tail_ids = tok(tail, add_special_tokens=False)["input_ids"]
                ids = (list(head_ids) + list(tail_ids))[:limit] if limit else list(head_ids) + list(tail_ids)
                if len(head_ids) >= len(ids):
                    raise DataError(f"Example {i}: the prompt fills all {limit} tokens of max_length, so no response "
                                    "token is left to learn from. Raise max_length or shorten the prompt.")
                labels = [IGNORE] * len(head_ids) + ids[len(head_ids):]
                rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
        return Features(rows, [len(r["input_ids"]) for r in rows])

    def collator(self, session, cfg):
        from transformers import DataCollatorForSeq2Seq

        padding = "max_length" if cfg.pad_to else "longest"
        return DataCollatorForSeq2Seq(session.tokenizer, padding=padding, max_length=cfg.pad_to,
                                      label_pad_token_id=IGNORE)

"""Preference data: a prompt with a chosen and a rejected answer, as texts or message lists.

Each example is the prompt with its chosen answer and with its rejected one, rendered by the chat template (as
chat SFT renders them, ``data/chat.py``), with the loss mask on the answer. ``logps`` runs both through the model in
one batch and sums each answer's token log-probabilities; the objectives that compare them (``objectives/dpo.py``,
``objectives/orpo.py``) make the loss. ``task="dpo"`` or ``task="orpo"`` names this task with that objective.
"""

from __future__ import annotations

from typing import Any

import torch

from nbtune.core.common.errors import TaskError, TrainConfigError
from nbtune.core.data import chat
from nbtune.core.data.features import DataError, Features
from nbtune.core.model.chunked_loss import causal_token_logps, chunkable_parts
from nbtune.core.tasks.base import TaskHandler, require_tokenizer
from nbtune.core.tasks.registry import register_task

IGNORE = chat.IGNORE
SIDES = ("chosen", "rejected")


def _turns(value: Any, i: int, column: str) -> list[dict[str, str]]:
    """A text, or a role/content list, as messages (a text answer is one assistant turn, a text prompt one user
    turn)."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"Example {i} has no text in column {column!r}; remove it or fill it in.")
        return [{"role": "user" if column == "prompt" else "assistant", "content": value}]
    return chat.normalise_messages(value, i, require_assistant=column != "prompt")


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the labelled tokens' log-probabilities, their count) per sequence; position t predicts t+1.

    log p = logit[label] - logsumexp(logits): the full vocabulary-wide log-softmax is never materialised."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    picked = torch.gather(logits, 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1).float()
    token_logps = picked - torch.logsumexp(logits.float(), dim=-1)
    return (token_logps * mask).sum(-1), mask.sum(-1)


def _pad(rows: list[list[int]], value: int, width: int) -> torch.Tensor:
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


@register_task
class PreferenceTask(TaskHandler):
    """Chosen/rejected answer pairs for a causal LM, trained by a preference objective (DPO by default)."""

    name = "preference"
    aliases = ("dpo", "orpo", "preference-tuning", "direct-preference-optimization")
    description = "preference tuning on chosen/rejected answers (objectives: dpo, orpo)"
    default_objective = "dpo"
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    columns = {"prompt": ("prompt", "question", "instruction"), "chosen": ("chosen",), "rejected": ("rejected",)}
    main_metric = "reward_accuracy"
    greater_is_better = True
    order = 60
    eval_batch_factor = 2
    chunked_logits = True  # log-probs from the hidden states in chunks (memory estimates count one chunk)

    # -- data -------------------------------------------------------------------------------------------------
    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        columns = {role: self.column(table, role, cfg.columns) for role in ("prompt", "chosen", "rejected")}
        template = chat.chat_template_of(tok, cfg.chat_template)
        rows, truncated, skipped = [], 0, 0
        for i, record in enumerate(table[list(columns.values())].itertuples(index=False, name=None)):
            prompt = _turns(record[0], i, "prompt")
            row: dict[str, list[int]] = {}
            for side, value in zip(SIDES, record[1:]):
                answer = _turns(value, i, side)
                if answer[:len(prompt)] == prompt:  # a full conversation that repeats the prompt
                    answer = answer[len(prompt):]
                if not answer or answer[-1]["role"] != "assistant":
                    raise DataError(f"Example {i}: the {side} answer must end with an assistant turn.")
                encoded = chat.encode_messages(tok, template, prompt + answer, "last", cfg.max_length, i)
                truncated += encoded.truncated
                row[f"{side}_input_ids"], row[f"{side}_labels"] = encoded.input_ids, encoded.labels
            if all(any(label != IGNORE for label in row[f"{side}_labels"]) for side in SIDES):
                rows.append(row)
            else:
                skipped += 1
        if not rows:
            raise DataError(f"No example keeps a token of both answers within max_length={cfg.max_length}: every "
                            "label is masked. Raise max_length or shorten the prompts.")
        lengths = [max(len(r["chosen_input_ids"]), len(r["rejected_input_ids"])) for r in rows]
        return Features(rows, lengths, meta={"truncated": truncated, "skipped": skipped,
                                             "chat_template": cfg.chat_template})

    def pack(self, features, cfg):
        raise TrainConfigError(f"packing=True is for causal-lm fine-tuning; {self.name} compares whole answers, "
                               "which are not packed.")

    def collator(self, session, cfg):
        pad = session.tokenizer.pad_token_id or 0

        def collate(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
            width = max(len(r[f"{s}_input_ids"]) for r in rows for s in SIDES)
            batch = {}
            for side in SIDES:
                ids = [r[f"{side}_input_ids"] for r in rows]
                batch[f"{side}_input_ids"] = _pad(ids, pad, width)
                batch[f"{side}_attention_mask"] = _pad([[1] * len(x) for x in ids], 0, width)
                batch[f"{side}_labels"] = _pad([r[f"{side}_labels"] for r in rows], IGNORE, width)
            return batch

        return collate

    def batch_size_of(self, batch) -> int:
        return int(batch["chosen_input_ids"].shape[0])

    def tokens_of(self, batch) -> int:
        return int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum())

    # -- the step ---------------------------------------------------------------------------------------------
    @staticmethod
    def _joined(batch) -> dict[str, torch.Tensor]:
        return {key: torch.cat([batch[f"chosen_{key}"], batch[f"rejected_{key}"]])
                for key in ("input_ids", "attention_mask", "labels")}

    def logps(self, model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(chosen log-probs, rejected log-probs, chosen token counts, rejected token counts) under ``model``."""
        joined = self._joined(batch)
        inputs = {"input_ids": joined["input_ids"], "attention_mask": joined["attention_mask"]}
        parts = chunkable_parts(model)
        if parts is not None:  # from the final hidden states in chunks: no vocabulary-wide logits held
            labels = joined["labels"]
            token_logps = causal_token_logps(parts, inputs, labels)
            total, count = token_logps.sum(-1), (labels[:, 1:] != IGNORE).sum(-1)
        else:
            logits = model(**inputs, use_cache=False).logits
            # prompt-learning adapters put virtual tokens first; the real tokens are the last ones
            logits = logits[:, -joined["labels"].shape[1]:]
            total, count = sequence_logps(logits, joined["labels"])
        n = batch["chosen_input_ids"].shape[0]
        return total[:n], total[n:], count[:n], count[n:]

    def forward(self, model, batch):
        raise TaskError("Preference pairs are trained by a preference objective, which compares the two answers: "
                        "objective='dpo' or 'orpo' (the supervised objective has no labels to learn from here).")

"""Preference tuning: DPO (Rafailov et al. 2023) and ORPO (Hong et al. 2024) on prompt/chosen/rejected data.

Each example is the prompt with its chosen answer and with its rejected one, rendered by the chat template (as
chat SFT renders them, ``chat.py``), with the loss mask on the answer. A step runs both through the model in one
batch and sums each answer's token log-probabilities.

- DPO compares them with a reference model: with an adapter attached, the same model with its adapters disabled
  (no second copy in memory); without one, a frozen copy of the model as it was when preference training began.
  loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))), the rewards being
  beta * (log pi - log ref). This is TRL's "sigmoid" DPO loss, checked against it in the tests.
- ORPO needs no reference: the chosen answer's mean token NLL plus lambda times -log sigmoid of the log odds ratio
  of the two answers' mean token probabilities.

Step metrics (the dashboard's second panel): reward margin, reward accuracy (share of pairs where the chosen answer
gets the higher reward), and the chosen and rejected rewards.
"""

from __future__ import annotations

import copy
import weakref
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from .. import chat
from ..training.data import DataError, Features
from .base import TaskHandler, require_tokenizer
from .registry import register_task

IGNORE = chat.IGNORE
SIDES = ("chosen", "rejected")
_REFERENCES: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


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


class PreferenceTask(TaskHandler):
    """The data, batching and bookkeeping shared by the preference losses; subclasses give ``preference_loss``."""

    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    columns = {"prompt": ("prompt", "question", "instruction"), "chosen": ("chosen",), "rejected": ("rejected",)}
    main_metric = "reward_accuracy"
    greater_is_better = True
    order = 60
    eval_batch_factor = 2
    uses_reference = False

    def __init__(self, beta: float = 0.1):
        self.beta = beta

    # -- data -------------------------------------------------------------------------------------------------
    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        self.beta = cfg.beta  # the loss of this run (the handler serves one run or one evaluation)
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
        from ..errors import TrainConfigError

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
        logits = model(input_ids=joined["input_ids"], attention_mask=joined["attention_mask"], use_cache=False).logits
        # prompt-learning adapters put virtual tokens first; the real tokens are the last ones
        logits = logits[:, -joined["labels"].shape[1]:]
        total, count = sequence_logps(logits, joined["labels"])
        n = batch["chosen_input_ids"].shape[0]
        return total[:n], total[n:], count[:n], count[n:]

    def reference_logps(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The answers' log-probs under the reference: the model with its adapters disabled, else the frozen copy
        made when preference training first ran on this model."""
        from ..adapters import is_peft_model

        with torch.no_grad():
            if is_peft_model(model):
                with model.disable_adapter():
                    chosen, rejected, _, _ = self.logps(model, batch)
            else:
                reference = _REFERENCES.get(model)
                if reference is None:
                    reference = copy.deepcopy(model).eval().requires_grad_(False)
                    _REFERENCES[model] = reference
                chosen, rejected, _, _ = self.logps(reference, batch)
        return chosen, rejected

    def forward(self, model, batch):
        return self.preference_loss(model, batch)

    def preference_loss(self, model, batch) -> SimpleNamespace:
        raise NotImplementedError

    def step_metrics(self, outputs, batch) -> dict[str, torch.Tensor]:
        return {"reward_margin": outputs.margin.mean(), "reward_accuracy": (outputs.margin > 0).float().mean(),
                "reward_chosen": outputs.chosen_rewards.mean(), "reward_rejected": outputs.rejected_rewards.mean()}

    # -- evaluation -------------------------------------------------------------------------------------------
    def collect(self, outputs, batch, store) -> None:
        store.setdefault("margins", []).extend(outputs.margin.detach().float().cpu().tolist())
        store.setdefault("chosen", []).extend(outputs.chosen_rewards.detach().float().cpu().tolist())
        store.setdefault("rejected", []).extend(outputs.rejected_rewards.detach().float().cpu().tolist())

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        margins = store.get("margins", [])
        n = len(margins) or 1
        return {"loss": loss, "reward_accuracy": sum(m > 0 for m in margins) / n,
                "reward_margin": sum(margins) / n, "reward_chosen": sum(store.get("chosen", [])) / n,
                "reward_rejected": sum(store.get("rejected", [])) / n}


@register_task
class DPOTask(PreferenceTask):
    name = "dpo"
    aliases = ("preference", "direct-preference-optimization")
    description = "preference tuning on chosen/rejected answers against a reference model (DPO)"
    uses_reference = True

    def preference_loss(self, model, batch) -> SimpleNamespace:
        chosen, rejected, _, _ = self.logps(model, batch)
        ref_chosen, ref_rejected = self.reference_logps(model, batch)
        chosen_rewards = self.beta * (chosen - ref_chosen)
        rejected_rewards = self.beta * (rejected - ref_rejected)
        margin = chosen_rewards - rejected_rewards
        loss = -F.logsigmoid(margin).mean()
        return SimpleNamespace(loss=loss, margin=margin.detach(), chosen_rewards=chosen_rewards.detach(),
                               rejected_rewards=rejected_rewards.detach())


@register_task
class ORPOTask(PreferenceTask):
    name = "orpo"
    aliases = ("odds-ratio-preference-optimization",)
    description = "preference tuning without a reference model: NLL on chosen plus an odds-ratio term (ORPO)"

    def preference_loss(self, model, batch) -> SimpleNamespace:
        chosen, rejected, n_chosen, n_rejected = self.logps(model, batch)
        mean_chosen, mean_rejected = chosen / n_chosen.clamp(min=1), rejected / n_rejected.clamp(min=1)
        # log odds(p) = log p - log(1 - p), with p the mean token probability of an answer
        log_odds = (mean_chosen - mean_rejected) - (torch.log1p(-torch.exp(mean_chosen))
                                                    - torch.log1p(-torch.exp(mean_rejected)))
        ratio_loss = -F.logsigmoid(log_odds)
        loss = (-mean_chosen + self.beta * ratio_loss).mean()
        chosen_rewards, rejected_rewards = self.beta * mean_chosen.detach(), self.beta * mean_rejected.detach()
        return SimpleNamespace(loss=loss, margin=chosen_rewards - rejected_rewards, chosen_rewards=chosen_rewards,
                               rejected_rewards=rejected_rewards)

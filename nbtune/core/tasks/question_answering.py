"""Extractive question answering (SQuAD-style): answers mapped to token spans, long contexts split with a
stride, predicted spans decoded back to text, exact match and F1."""

from __future__ import annotations

import collections
import re
import string
from typing import Any

import numpy as np

from nbtune.core.data.features import DataError, Features
from nbtune.core.tasks.base import TaskHandler, require_tokenizer, texts_of
from nbtune.core.tasks.registry import register_task


def _gold_answers(table, i: int, context: str, answers_col: str | None, start_col: str | None) -> list[tuple[str, int]]:
    """(text, start) pairs of example ``i``; each is checked against the context."""
    if answers_col is None:
        return []
    value = table[answers_col].iloc[i]
    if isinstance(value, dict):  # SQuAD: {"text": [...], "answer_start": [...]}
        texts, starts = list(value.get("text", [])), list(value.get("answer_start", []))
    else:
        texts = [value]
        starts = [table[start_col].iloc[i]] if start_col else [None]
    if not texts:
        raise DataError(f"Example {i} has no answer; give at least one answer text.")
    out = []
    for text, start in zip(texts, starts + [None] * (len(texts) - len(starts))):
        text = str(text)
        if start is None or (isinstance(start, float) and np.isnan(start)):
            start = context.find(text)
            if start < 0:
                raise DataError(f"Example {i}: the answer {text!r} does not appear in its context; fix the answer or "
                                "the context.")
        start = int(start)
        if context[start:start + len(text)] != text:
            raise DataError(f"Example {i}: the answer {text!r} is not at character {start} of its context (found "
                            f"{context[start:start + len(text)]!r}); fix answer_start.")
        out.append((text, start))
    return out


@register_task
class QuestionAnsweringTask(TaskHandler):
    name = "question-answering"
    order = 30
    aliases = ("qa", "extractive-qa")
    description = "extractive QA (start/end spans)"
    auto_class = "AutoModelForQuestionAnswering"
    class_suffixes = ("ForQuestionAnswering",)
    new_head = True
    peft_task_type = "QUESTION_ANS"
    columns = {"question": ("question",), "context": ("context", "passage"),
               "answers": ("answers", "answer", "answer_text"), "answer_start": ("answer_start",)}
    main_metric = "f1"
    greater_is_better = True
    max_answer_tokens = 30

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        q_col = self.column(table, "question", cfg.columns)
        c_col = self.column(table, "context", cfg.columns)
        a_col = self.column(table, "answers", cfg.columns, required=require_labels)
        s_col = self.column(table, "answer_start", cfg.columns, required=False)
        questions, contexts = texts_of(table, q_col), texts_of(table, c_col)
        golds = [_gold_answers(table, i, c, a_col, s_col) for i, c in enumerate(contexts)]
        limit = cfg.max_length or 384
        if cfg.stride >= limit // 2:
            raise DataError(f"stride ({cfg.stride}) must be well below max_length ({limit}): each window moves on by "
                            "max_length - stride - question tokens. Use e.g. stride=max_length // 4.")
        pad_right = tok.padding_side == "right"
        enc = tok(questions if pad_right else contexts, contexts if pad_right else questions,
                  truncation="only_second" if pad_right else "only_first", max_length=limit,
                  stride=cfg.stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        context_index = 1 if pad_right else 0
        rows, example_ids, offsets = [], [], []
        for j in range(len(enc["input_ids"])):
            example = enc["overflow_to_sample_mapping"][j]
            seq = enc.sequence_ids(j)
            row = {k: enc[k][j] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            spans = enc["offset_mapping"][j]
            if golds[example]:
                text, start_char = golds[example][0]
                end_char = start_char + len(text)
                ctx = [k for k, s in enumerate(seq) if s == context_index]
                first, last = ctx[0], ctx[-1]
                if spans[first][0] > start_char or spans[last][1] < end_char:
                    row["start_positions"] = row["end_positions"] = 0  # the answer is not in this window
                else:
                    start = first
                    while start <= last and spans[start][0] <= start_char:
                        start += 1
                    end = last
                    while end >= first and spans[end][1] >= end_char:
                        end -= 1
                    row["start_positions"], row["end_positions"] = start - 1, end + 1
            rows.append(row)
            example_ids.append(example)
            offsets.append([o if s == context_index else None for o, s in zip(spans, seq)])
        meta = {"example_ids": example_ids, "offsets": offsets, "contexts": contexts,
                "answers": [[t for t, _ in g] for g in golds]}
        return Features(rows, self.sizes(rows), meta=meta)

    def collator(self, session, cfg):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(session.tokenizer, padding="longest")

    def collect(self, outputs, batch, store) -> None:
        lengths = batch["attention_mask"].sum(-1).tolist() if "attention_mask" in batch else None
        for k, (s, e) in enumerate(zip(outputs.start_logits.float().cpu(), outputs.end_logits.float().cpu())):
            n = int(lengths[k]) if lengths else len(s)
            store.setdefault("start", []).append(s[:n].numpy())
            store.setdefault("end", []).append(e[:n].numpy())

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        out = {"loss": loss}
        if features is None or "start" not in store:
            return out
        predictions = self.decode(store["start"], store["end"], features.meta)
        golds = features.meta["answers"]
        if any(golds):
            out.update(squad_scores(predictions, golds))
        return out

    def decode(self, starts, ends, meta, n_best: int = 20) -> list[str]:
        """Best-scoring valid span of each example over all its windows, as text from the context."""
        by_example = collections.defaultdict(list)
        for feature, example in enumerate(meta["example_ids"]):
            by_example[example].append(feature)
        answers = []
        for example, context in enumerate(meta["contexts"]):
            best, best_score = "", -np.inf
            for feature in by_example[example]:
                offsets, s_logits, e_logits = meta["offsets"][feature], starts[feature], ends[feature]
                for s in np.argsort(s_logits)[::-1][:n_best]:
                    for e in np.argsort(e_logits)[::-1][:n_best]:
                        if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                            continue
                        if e < s or e - s + 1 > self.max_answer_tokens:
                            continue
                        score = s_logits[s] + e_logits[e]
                        if score > best_score:
                            best_score, best = score, context[offsets[s][0]:offsets[e][1]]
            answers.append(best)
        return answers


def _normalize(text: str) -> str:
    """SQuAD v1.1 answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    pred, ref = _normalize(prediction).split(), _normalize(gold).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if not pred or not ref:
        return float(pred == ref)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: list[str], golds: list[list[str]]) -> dict[str, Any]:
    """Exact match and token F1 as the official SQuAD v1.1 script computes them (best over gold answers), 0-1.

    Written out because the usual packages (``evaluate``) fetch the metric script from the hub at run time.
    """
    pairs = [(p, g) for p, g in zip(predictions, golds) if g]
    em = sum(max(float(_normalize(p) == _normalize(a)) for a in g) for p, g in pairs)
    f1 = sum(max(_f1(p, a) for a in g) for p, g in pairs)
    n = max(len(pairs), 1)
    return {"exact_match": em / n, "f1": f1 / n}

"""Token classification (NER, POS): tags aligned to sub-word tokens, entity-level metrics with seqeval."""

from __future__ import annotations

from typing import Any

import numpy as np

from nbtune.core.data.features import DataError, Features, require_present
from nbtune.core.tasks import has_default_names
from nbtune.core.tasks.base import TaskHandler, in_length_order, require_tokenizer
from nbtune.core.tasks.labels import require_known
from nbtune.core.tasks.registry import register_task

TOKENS = ("tokens", "words")
TAGS = ("tags", "ner_tags", "labels", "pos_tags")
IGNORE = -100


def tag_order(tags: set[str]) -> list[str]:
    """'O' first, then entity types grouped with B- before I- (a stable, readable id order)."""
    rest = sorted(t for t in tags if t != "O")
    rest.sort(key=lambda t: (t[2:] if t[:2] in ("B-", "I-") else t, t[:2] != "B-"))
    return (["O"] if "O" in tags else []) + rest


@register_task
class TokenClassificationTask(TaskHandler):
    name = "token-classification"
    order = 20
    aliases = ("ner", "pos", "token-cls")
    description = "a label per token (NER, POS)"
    auto_class = "AutoModelForTokenClassification"
    class_suffixes = ("ForTokenClassification",)
    labelled = new_head = True
    peft_task_type = "TOKEN_CLS"
    columns = {"tokens": TOKENS, "tags": TAGS}
    label_role = "tags"
    main_metric = "f1"
    greater_is_better = True

    @classmethod
    def for_session(cls, session) -> "TokenClassificationTask":
        return cls(session)

    def __init__(self, session):
        self.session = session  # tag names are read at metric time: training may have just named them

    def _tag_ids(self, session, tags_per_row: list[list[Any]], training: bool):
        """Tag ids per row, and the new id2label when the data defines the label set (a fresh head)."""
        config = session.model.config
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        flat = [t for row in tags_per_row for t in row]
        if all(isinstance(t, (int, np.integer)) for t in flat):
            bad = sorted({int(t) for t in flat if not 0 <= int(t) < config.num_labels})
            if bad:
                raise DataError(f"Tag ids {bad[:10]} are out of range for a head of {config.num_labels} tags.")
            return [[int(t) for t in row] for row in tags_per_row], None
        if not all(isinstance(t, str) for t in flat):
            raise DataError("Tags must be all names (B-person, O...) or all integer ids.")
        names = set(flat)
        if has_default_names(id2label):
            if not training:
                raise DataError("The model's tags have no names yet: train it first, or evaluate with integer tag ids.")
            order = tag_order(names)
            lookup = {n: i for i, n in enumerate(order)}
            return [[lookup[t] for t in row] for row in tags_per_row], dict(enumerate(order))
        lookup = {v: k for k, v in id2label.items()}
        require_known(names, lookup, "the data", "the tags the model was trained on",
                      "Map them to known tags, or give a fresh head with s.reset_head(labels=[...]).")
        return [[lookup[t] for t in row] for row in tags_per_row], None

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        if not getattr(tok, "is_fast", False):
            raise DataError("Token classification needs a fast tokenizer (for word alignment).")
        tokens_col = self.column(table, "tokens", cfg.columns)
        tags_col = self.column(table, "tags", cfg.columns, required=require_labels)
        words = _lists(table, tokens_col, "words")
        for i, row in enumerate(words):
            if not row or not all(isinstance(w, str) for w in row):
                raise DataError(f"Example {i}: {tokens_col!r} must be a non-empty list of words; got {row!r}.")
        tags, names = (None, None)
        if tags_col:
            raw = _lists(table, tags_col, "tags")
            for i, (w, t) in enumerate(zip(words, raw)):
                if len(w) != len(t):
                    raise DataError(f"Example {i} has {len(w)} words but {len(t)} tags.")
            tags, names = self._tag_ids(session, raw, require_labels)
        enc = tok(words, is_split_into_words=True, truncation=True, max_length=cfg.max_length)
        rows = []
        for i in range(len(words)):
            row = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            if tags is not None:
                labels, previous = [], None
                for word in enc.word_ids(i):  # label the first sub-token of each word, ignore the rest
                    labels.append(IGNORE if word is None or word == previous else tags[i][word])
                    previous = word
                row["labels"] = labels
            rows.append(row)
        return Features(rows, self.sizes(rows), label_names=names)

    def predict(self, session, items, batch_size, max_length) -> list[dict[str, Any]]:
        """A tag per word: each item is a sentence (split on whitespace) or a list of words."""
        tok = require_tokenizer(session, self.name)
        names = session.model.config.id2label
        words = [x.split() if isinstance(x, str) else list(x) for x in items]
        device = next(session.model.parameters()).device

        def run(chunk: list[list[str]]) -> list[dict[str, Any]]:
            enc = tok(chunk, is_split_into_words=True, truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            best = session.model(**{k: v.to(device) for k, v in enc.items()}).logits.argmax(-1).cpu()
            out = []
            for j, row in enumerate(chunk):
                tags, seen = [None] * len(row), set()
                for position, word in enumerate(enc.word_ids(j)):
                    if word is not None and word not in seen:  # the first sub-token speaks for the word
                        seen.add(word)
                        tags[word] = names.get(int(best[j, position]), str(int(best[j, position])))
                out.append({"words": row, "tags": tags})  # None: a word cut off by max_length
            return out

        return in_length_order(words, lambda row: sum(map(len, row)) + len(row), batch_size, run)

    def apply(self, session, features: Features) -> None:
        names = features.label_names
        if not names:
            return
        config = session.model.config
        if config.num_labels != len(names):
            session.reset_head(labels=list(names.values()))
            session.notes.append(f"token head resized to the {len(names)} tags found in the training data")
        else:
            config.id2label = dict(names)
            config.label2id = {v: k for k, v in names.items()}

    def collator(self, session, cfg):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(session.tokenizer, padding="longest", label_pad_token_id=IGNORE)

    def collect(self, outputs, batch, store) -> None:
        preds = outputs.logits.argmax(-1).cpu()
        labels = batch["labels"].cpu()
        for p, y in zip(preds, labels):
            keep = y != IGNORE
            store.setdefault("pred", []).append(p[keep].tolist())
            store.setdefault("gold", []).append(y[keep].tolist())

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        out = {"loss": loss}
        if "gold" not in store:
            return out
        names = {int(k): str(v) for k, v in self.session.model.config.id2label.items()}
        out.update(entity_scores(store["gold"], store["pred"], names))
        return out


def entity_scores(gold_ids: list[list[int]], pred_ids: list[list[int]], names: dict[int, str]) -> dict[str, float]:
    """Entity-level precision, recall, F1 (seqeval, IOB2) and token accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    gold = [[names[i] for i in row] for row in gold_ids]
    pred = [[names[i] for i in row] for row in pred_ids]
    return {
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "f1": float(f1_score(gold, pred, zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)),
    }


def _lists(table, column: str, what: str) -> list[list[Any]]:
    """A column of lists (words or tags, one list per example). A missing cell, or a string where a list belongs
    (which would otherwise be read letter by letter), is an error naming the rows."""
    values = table[column].tolist()
    require_present(values, column, what)
    text = [i for i, v in enumerate(values) if isinstance(v, str)]
    if text:
        raise DataError(f"Column {column!r} holds text where token classification takes a list of {what} per example "
                        f"(row {text[0]}: {values[text[0]]!r}). Split it into a list: "
                        f"df[{column!r}] = df[{column!r}].str.split().")
    return [list(v) for v in values]

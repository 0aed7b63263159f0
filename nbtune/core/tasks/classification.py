"""Sentence and sentence-pair classification, and regression (``num_labels=1``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nbtune.core.data.features import DataError, Features, require_present
from nbtune.core.tasks import has_default_names
from nbtune.core.tasks.base import TaskHandler, in_length_order, require_tokenizer, texts_of
from nbtune.core.tasks.labels import require_known
from nbtune.core.tasks.registry import register_task

TEXT = ("text", "sentence", "sentence1", "question1", "review", "content", "document")
PAIR = ("text_pair", "sentence2", "question2")
LABEL = ("label", "labels", "target", "score")


@register_task
class ClassificationTask(TaskHandler):
    name = "text-classification"
    order = 10
    aliases = ("sequence-classification", "classification", "regression", "sentiment-analysis")
    description = "sentence or sentence-pair classification; regression with num_labels=1"
    auto_class = "AutoModelForSequenceClassification"
    class_suffixes = ("ForSequenceClassification",)
    labelled = new_head = True
    peft_task_type = "SEQ_CLS"
    columns = {"text": TEXT, "text_pair": PAIR, "label": LABEL}
    label_role = "label"
    main_metric = "accuracy"
    greater_is_better = True

    @classmethod
    def problem_type(cls, num_labels: int) -> str:
        return "regression" if num_labels == 1 else "single_label_classification"

    @classmethod
    def for_session(cls, session) -> "ClassificationTask":
        """Regression when the head has one output."""
        return cls(regression=getattr(getattr(session.model, "config", None), "num_labels", 2) == 1)

    def __init__(self, regression: bool = False):
        self.regression = regression
        if regression:
            self.main_metric, self.greater_is_better = "mse", False

    # -- labels ---------------------------------------------------------------------------------
    def classes_in(self, table, cfg) -> set | None:
        return None if self.regression else super().classes_in(table, cfg)  # scores are not classes

    def encode_labels(self, session, values: list[Any], column: str = "label",
                      rows: list[int] | None = None) -> tuple[list, dict[int, str] | None]:
        """Label ids (or floats for regression) and, when names were learned from the data, the new id2label.
        Each refusal names its cause: missing values, mixed types, fractions, ids out of range (``rows`` maps
        positions to the table's row numbers for the message)."""
        config = session.model.config if hasattr(session.model, "config") else None
        num_labels = getattr(config, "num_labels", None)
        require_present(values, column, "label", rows)
        at = (lambda i: rows[i]) if rows is not None else (lambda i: i)
        if self.regression:
            bad = [i for i, v in enumerate(values) if not _numeric(v)]
            if bad:
                raise DataError(f"Regression (num_labels=1) needs numeric labels; row {at(bad[0])} of column "
                                f"{column!r} has {values[bad[0]]!r}. For classes, load with num_labels=N or labels=[...].")
            return [float(v) for v in values], None
        kind = ["str" if isinstance(v, str) else "number" if _numeric(v) else type(v).__name__ for v in values]
        if len(set(kind)) > 1:
            first: dict[str, int] = {}
            for i, k in enumerate(kind):
                first.setdefault(k, i)
            examples = ", ".join(f"row {at(i)}: {values[i]!r}" for i in sorted(first.values()))
            raise DataError(f"Labels in column {column!r} mix types ({examples}): use all names (e.g. 'pos') or all "
                            "integer ids.")
        if kind[0] == "str":
            return self._names_to_ids(config, num_labels, values)
        if kind[0] != "number":
            raise DataError(f"Labels must be names or integer ids; column {column!r} holds {kind[0]} values such as "
                            f"{values[0]!r}.")
        floats = np.asarray(values, dtype=float)
        fractional = np.flatnonzero(~np.isfinite(floats) | (floats != np.round(floats)))
        if len(fractional):
            shown = ", ".join(f"row {at(int(i))}: {values[int(i)]!r}" for i in fractional[:3])
            raise DataError(f"Labels in column {column!r} are fractional numbers, not whole ({shown}): classes are names or "
                            "integer ids; for regression load the model with num_labels=1.")
        ids = floats.astype(int)
        bad = sorted({int(i) for i in ids if not 0 <= i < num_labels})
        if bad:
            raise DataError(f"Labels {bad[:10]} are out of range: the head has {num_labels} outputs (ids 0-"
                            f"{num_labels - 1}). Give a fresh head with s.reset_head(num_labels={int(ids.max()) + 1}).")
        return ids.tolist(), None

    def _names_to_ids(self, config, num_labels: int, values: list[str]):
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        names = sorted(set(values))
        if has_default_names(id2label):
            if len(names) > num_labels:
                raise DataError(f"The data has {len(names)} label names {names[:10]} but the head has {num_labels} "
                                f"outputs. Give a fresh head with s.reset_head(labels={names}).")
            new = dict(enumerate(names + [f"LABEL_{i}" for i in range(len(names), num_labels)]))
            lookup = {v: k for k, v in new.items()}
            return [lookup[v] for v in values], new
        lookup = {v: k for k, v in id2label.items()}
        require_known(set(names), lookup, "the data", "the model's labels",
                      "Map them to the model's labels, or give a fresh head with s.reset_head(labels=[...]).")
        return [lookup[v] for v in values], None

    # -- hooks ----------------------------------------------------------------------------------
    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        text_col = self.column(table, "text", cfg.columns)
        pair_col = self.column(table, "text_pair", cfg.columns, required=False)
        label_col = self.column(table, "label", cfg.columns, required=require_labels)
        texts = texts_of(table, text_col)
        pairs = texts_of(table, pair_col) if pair_col else None
        labels, names = (self.encode_labels(session, table[label_col].tolist(), label_col) if label_col
                         else (None, None))
        enc = tok(texts, pairs, truncation=True, max_length=cfg.max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        rows = [{k: enc[k][i] for k in keys} for i in range(len(texts))]
        if labels is not None:
            for row, y in zip(rows, labels):
                row["labels"] = y
        return Features(rows, self.sizes(rows), label_names=names)

    def apply(self, session, features: Features) -> None:
        names = features.label_names
        if names:
            config = session.model.config
            config.id2label = dict(names)
            config.label2id = {v: k for k, v in names.items()}

    def collator(self, session, cfg):
        from transformers import DataCollatorWithPadding

        if cfg.pad_to:
            return DataCollatorWithPadding(session.tokenizer, padding="max_length", max_length=cfg.pad_to)
        return DataCollatorWithPadding(session.tokenizer, padding="longest")

    def collect(self, outputs, batch, store) -> None:
        logits = outputs.logits.detach().float().cpu()
        store.setdefault("logits", []).append(logits)
        if "labels" in batch:
            store.setdefault("labels", []).append(batch["labels"].detach().cpu())

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        out = {"loss": loss}
        if "labels" not in store:
            return out
        logits = torch.cat(store["logits"]).numpy()
        labels = torch.cat(store["labels"]).numpy()
        if self.regression:
            from scipy.stats import pearsonr, spearmanr

            preds = logits.reshape(-1)
            out["mse"] = float(np.mean((preds - labels) ** 2))
            if len(preds) > 1 and np.std(preds) > 0 and np.std(labels) > 0:
                out["pearson"] = float(pearsonr(preds, labels)[0])
                out["spearman"] = float(spearmanr(preds, labels)[0])
            return out
        from sklearn.metrics import accuracy_score, f1_score

        preds = logits.argmax(-1)
        out["accuracy"] = float(accuracy_score(labels, preds))
        out["macro_f1"] = float(f1_score(labels, preds, average="macro"))  # the name says which F1
        return out

    def predict(self, session, items, batch_size, max_length) -> list[dict[str, Any]]:
        """Label and scores per text, or per (text, text_pair) tuple."""
        tok = require_tokenizer(session, self.name)
        device = next(session.model.parameters()).device

        def run(chunk: list) -> list[dict[str, Any]]:
            first = [c[0] if isinstance(c, tuple) else c for c in chunk]
            second = [c[1] for c in chunk] if all(isinstance(c, tuple) for c in chunk) else None
            enc = tok(first, second, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            return self.predict_rows(session, session.model(**enc.to(device)).logits)

        return in_length_order(items, lambda c: sum(map(len, c)) if isinstance(c, tuple) else len(c), batch_size, run)

    def predict_rows(self, session, logits: torch.Tensor) -> list[dict[str, Any]]:
        if self.regression:
            return [{"score": float(v)} for v in logits.reshape(-1)]
        names = session.model.config.id2label
        probs = logits.float().softmax(-1)
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append({"label": names.get(best, str(best)), "score": float(row[best]),
                        "scores": {names.get(i, str(i)): float(p) for i, p in enumerate(row)}})
        return out


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)) and not isinstance(v, str)

"""Sequence to sequence (summarisation, translation): loss on targets, ROUGE and BLEU from generated text."""

from __future__ import annotations

from nbtune.core.data.features import DataError, Features
from nbtune.core.tasks.base import GenerativeTask, TokenLossTask, require_tokenizer
from nbtune.core.tasks.generation import generate
from nbtune.core.tasks.registry import register_task

SOURCE = ("source", "input", "document", "article", "text", "src")
TARGET = ("target", "output", "summary", "tldr", "tgt")


def _as_text(value, i: int, column: str) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        value = " ".join(str(v) for v in value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"Example {i} has an empty {column!r}; remove it or fill it in.")
    return value


def _references(value, i: int, column: str) -> list[str]:
    """All references of an example (SciTLDR dev/test hold several); the first is the training target."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        refs = [str(v) for v in value if isinstance(v, str) and v.strip()]
    else:
        refs = [value] if isinstance(value, str) and value.strip() else []
    if not refs:
        raise DataError(f"Example {i} has an empty target in {column!r}; every example needs a target to learn.")
    return refs


@register_task
class Seq2SeqTask(GenerativeTask, TokenLossTask):
    name = "seq2seq"
    order = 60
    aliases = ("text2text-generation", "summarization", "translation")
    description = "sequence to sequence: summarisation, translation"
    auto_class = "AutoModelForSeq2SeqLM"
    class_suffixes = ("ForConditionalGeneration", "ForSeq2SeqLM")
    peft_task_type = "SEQ_2_SEQ_LM"
    columns = {"source": SOURCE, "target": TARGET}
    main_metric = "loss"
    greater_is_better = False
    report_perplexity = False

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        tok = require_tokenizer(session, self.name)
        src_col = self.column(table, "source", cfg.columns)
        tgt_col = self.column(table, "target", cfg.columns, required=require_labels)
        sources = [_as_text(v, i, src_col) for i, v in enumerate(table[src_col])]
        refs = [_references(v, i, tgt_col) for i, v in enumerate(table[tgt_col])] if tgt_col else None
        enc = tok(sources, truncation=True, max_length=cfg.max_length)
        keys = [k for k in ("input_ids", "attention_mask") if k in enc]
        rows = [{k: enc[k][i] for k in keys} for i in range(len(sources))]
        if refs is not None:
            labels = tok(text_target=[r[0] for r in refs], truncation=True, max_length=cfg.max_target_length)["input_ids"]
            for row, y in zip(rows, labels):
                row["labels"] = y
        return Features(rows, self.sizes(rows), meta={"sources": sources, "references": refs})

    def collator(self, session, cfg):
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(session.tokenizer, model=session.model, label_pad_token_id=-100,
                                      padding="max_length" if cfg.pad_to else "longest", max_length=cfg.pad_to)

    @classmethod
    def eval_generation_batch(cls, eval_batch_size: int | None = None) -> int | None:
        return eval_batch_size or 8  # generation keeps a KV cache per sequence: a small batch by default

    def generation_metrics(self, session, features: Features, cfg) -> dict[str, float]:
        refs = features.meta.get("references")
        if not refs:
            return {}
        predictions = generate(session, features.meta["sources"], max_new_tokens=cfg.max_new_tokens,
                               batch_size=self.eval_generation_batch(cfg.eval_batch_size), max_length=cfg.max_length)
        return text_scores(predictions, refs)


def text_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F1 (rouge-score, stemmed, best over references; 0-1) and corpus BLEU (sacrebleu, 0-100)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for pred, refs in zip(predictions, references):
        scores = scorer.score_multi(refs, pred)
        for key in totals:
            totals[key] += scores[key].fmeasure
    n = max(len(predictions), 1)
    out = {k: v / n for k, v in totals.items()}
    depth = max(len(r) for r in references)
    streams = [[r[i] if i < len(r) else r[0] for r in references] for i in range(depth)]  # pad with the first ref
    out["bleu"] = float(sacrebleu.corpus_bleu(predictions, streams).score)
    return out

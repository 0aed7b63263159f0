"""Batches and a tiny optimisation loop for adapter tests (the real training loop is tested elsewhere)."""

from __future__ import annotations

import torch

from tiny_models import sst2_sentences

ROWS = sst2_sentences(12)
TEXTS = [t for t, _ in ROWS]
LABELS = [y for _, y in ROWS]


def batch_for(session) -> dict[str, torch.Tensor]:
    tok = session.tokenizer
    enc = tok(TEXTS, padding=True, truncation=True, max_length=24, return_tensors="pt")
    if session.task == "text-classification":
        enc["labels"] = torch.tensor(LABELS)
    elif session.task == "seq2seq":  # learn to copy the first three words
        enc["labels"] = _labels(tok, [" ".join(t.split()[:3]) for t in TEXTS])
    else:
        enc["labels"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return dict(enc)


def _labels(tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    return enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)


def eval_loss(session, batch) -> float:
    session.eval_mode()
    with torch.no_grad():
        return session.model(**batch).loss.item()


def optimise(session, batch, steps: int = 8, lr: float = 1e-2) -> tuple[float, float]:
    """(loss before, loss after) ``steps`` AdamW steps on one fixed batch, both measured in eval mode."""
    before = eval_loss(session, batch)
    params = [p for p in session.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    for _ in range(steps):
        session.train_mode()
        loss = session.model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return before, eval_loss(session, batch)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}

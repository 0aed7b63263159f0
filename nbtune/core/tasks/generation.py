"""Text generation for causal and seq2seq models (``Session.generate``), chat template included."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from nbtune.core.common.errors import NbtuneError
from nbtune.core.model.architecture import is_peft_model
from nbtune.core.tasks import get_task
from nbtune.render.generation import before_after_html, before_after_text


@contextlib.contextmanager
def _left_padding(tokenizer):
    """Decoder-only models must be left-padded for batched generation."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = side


def chat_prompt(tokenizer, prompt: str) -> tuple[str, bool]:
    """(text to feed, whether the template already added special tokens)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), True
    return prompt, False


def generation_kind(session) -> str | None:
    """"causal" or "seq2seq" for a session whose model writes text (by its task's transformers class), else None."""
    if session.task is None:
        return None
    auto = get_task(session.task).auto_class
    return {"AutoModelForCausalLM": "causal", "AutoModelForSeq2SeqLM": "seq2seq"}.get(auto or "")


@dataclass
class BeforeAfter:
    """Answers of the base model (adapters disabled) and of the tuned one to the same prompts."""

    prompts: list[str]
    base: list[str]
    tuned: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame({"prompt": self.prompts, "base": self.base, "tuned": self.tuned})

    def __repr__(self) -> str:
        return before_after_text(self)

    def _repr_html_(self) -> str:
        return before_after_html(self)


def before_after(session, prompts: str | list[str], max_new_tokens: int = 64, chat: bool | None = None,
                 **generate_kwargs: Any) -> BeforeAfter:
    """Generate for each prompt with the adapters disabled (the base model) and enabled (the tuned one), with the
    same settings (greedy unless ``generate_kwargs`` say otherwise)."""
    if not is_peft_model(session.model):
        raise NbtuneError("before_after() compares the base model with its adapter, and this session has no adapter "
                          "(it was fully fine-tuned, or merged). Generate with s.generate(...) here and with a fresh "
                          "nbtune.load(...) of the base model to compare.")
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    tuned = generate(session, items, max_new_tokens=max_new_tokens, chat=chat, **generate_kwargs)
    with session.adapters_disabled():
        base = generate(session, items, max_new_tokens=max_new_tokens, chat=chat, **generate_kwargs)
    return BeforeAfter(items, base, tuned, {"max_new_tokens": max_new_tokens, **generate_kwargs})


def generate(session, prompts: str | list[str], max_new_tokens: int = 64, chat: bool | None = None,
             batch_size: int = 8, max_length: int | None = 512, **generate_kwargs: Any) -> list[str]:
    """Continue (causal LM) or transform (seq2seq) each prompt; return only the generated text.

    ``chat`` (default: when the tokenizer has a chat template) wraps each prompt as a user message, the way the
    causal-LM task formats prompt/response training pairs. Greedy decoding unless ``generate_kwargs`` say
    otherwise (``do_sample=True, temperature=0.7``...).
    """
    session.require_weights("generate")
    kind = generation_kind(session)
    if kind is None:
        raise NbtuneError(f"generate() is for language models (causal-lm, seq2seq, preference-tuned); this session's "
                          f"task is {session.task}.")
    tok = session.tokenizer
    if tok is None:
        raise NbtuneError("generate() needs a tokenizer; load the model with one.")
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    if max_new_tokens < 1:
        raise NbtuneError(f"max_new_tokens must be >= 1; got {max_new_tokens}.")
    causal = kind == "causal"
    use_chat = causal and (bool(getattr(tok, "chat_template", None)) if chat is None else chat)
    model = session.model
    device = next(model.parameters()).device
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tok.pad_token_id,
              **generate_kwargs}
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (_left_padding(tok) if causal else contextlib.nullcontext()):
            for i in range(0, len(items), batch_size):
                chunk = items[i:i + batch_size]
                texts, templated = zip(*(chat_prompt(tok, p) if use_chat else (p, False) for p in chunk))
                enc = tok(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                          add_special_tokens=not templated[0]).to(device)
                generated = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
                if causal:
                    generated = generated[:, enc["input_ids"].shape[1]:]
                out.extend(t.strip() for t in tok.batch_decode(generated, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return out

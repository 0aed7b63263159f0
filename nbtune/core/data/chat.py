"""Conversations as training rows: any chat data shape -> role/content messages -> token ids with the loss on the
assistant's tokens only.

Accepted shapes, tried in order: a ``messages`` (or ``conversations``) column holding role/content lists (ShareGPT's
from/value lists too), with an optional ``system`` column; prompt/response pairs (``prompt``/``response``,
``prompt``/``completion``, ``question``/``answer``); Alpaca's ``instruction``/``input``/``output``. Every shape
becomes messages, and messages are rendered by the tokenizer's own chat template (what ``generate`` and every
serving stack feed the model), or by a named template (``chat_template="chatml"``) when the tokenizer has none.

Which tokens are trained is found from the rendering itself: for each assistant turn the conversation up to it is
rendered with the generation prompt, and the text the turn adds after that prefix (its content and the template's
end-of-turn mark) is the trained span. This works with any template that renders a conversation's beginning as a
prefix of the whole, which nbtune checks per example instead of assuming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbtune.core.data.features import DataError, pick_column

IGNORE = -100
MESSAGE_COLUMNS = ("messages", "conversations", "conversation", "chat")
# (prompt column, response column) pairs, tried in order; "instruction" may come with an "input" column
PAIRS = (("prompt", "response"), ("prompt", "completion"), ("question", "answer"), ("instruction", "output"))
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "system": "system", "bot": "assistant"}

# Templates for tokenizers that ship none, by name. ChatML is what SmolLM2, Qwen and many others use.
NAMED_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "zephyr": (
        "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
}


def chat_template_of(tok, name: str | None) -> str | None:
    """The template to render with: a named one if asked, else the tokenizer's own, else None."""
    if name is not None:
        if name not in NAMED_TEMPLATES:
            raise DataError(f"Unknown chat_template {name!r}; named templates: {', '.join(NAMED_TEMPLATES)}. "
                            "Or leave it unset to use the tokenizer's own.")
        return NAMED_TEMPLATES[name]
    return getattr(tok, "chat_template", None) or None


def normalise_messages(messages: Any, i: int, require_assistant: bool = True) -> list[dict[str, str]]:
    """A role/content list (ShareGPT's from/value accepted), checked: roles known and, unless a prompt alone is
    wanted (``require_assistant=False``), an assistant turn present."""
    if hasattr(messages, "tolist"):  # a numpy array of dicts, as pandas gives a parquet list column
        messages = messages.tolist()
    if not isinstance(messages, (list, tuple)) or not messages:
        raise DataError(f"Example {i}: messages must be a non-empty list of {{'role': ..., 'content': ...}} "
                        f"dicts; got {type(messages).__name__}.")
    out = []
    for turn in messages:
        if not isinstance(turn, dict):
            raise DataError(f"Example {i}: each message must be a dict with 'role' and 'content'; got {turn!r}.")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        role = SHAREGPT_ROLES.get(str(role).lower(), None) if role is not None else None
        if role is None or not isinstance(content, str):
            raise DataError(f"Example {i}: a message needs a role (system, user or assistant) and a text content; "
                            f"got {turn!r}.")
        out.append({"role": role, "content": content})
    if require_assistant and not any(t["role"] == "assistant" for t in out):
        raise DataError(f"Example {i} has no assistant message, so there is nothing to learn from it. Each "
                        "conversation needs at least one {'role': 'assistant', ...} turn.")
    return out


def pair_columns(table, given: dict[str, str]) -> tuple[str, str] | None:
    """The (prompt, response) columns of single-turn data, or None."""
    if "prompt" in given or "response" in given:
        return pick_column(table, "prompt", (), given), pick_column(table, "response", (), given)
    for prompt, response in PAIRS:
        if prompt in table.columns and response in table.columns:
            return prompt, response
    return None


def message_column(table, given: dict[str, str]) -> str | None:
    return pick_column(table, "messages", MESSAGE_COLUMNS, given, required=False)


def conversations(table, given: dict[str, str]) -> list[list[dict[str, str]]] | None:
    """Every example as messages, or None when the table holds no chat or prompt/response data."""
    system = table["system"].fillna("").astype(str).tolist() if "system" in table.columns else None
    column = message_column(table, given)
    if column is not None:
        out = [normalise_messages(m, i) for i, m in enumerate(table[column].tolist())]
    else:
        pair = pair_columns(table, given)
        if pair is None:
            return None
        prompts, responses = (table[c].tolist() for c in pair)
        if pair[0] == "instruction" and "input" in table.columns:
            extra = table["input"].fillna("").astype(str).tolist()
            prompts = [p if not x.strip() else f"{p}\n\n{x}" for p, x in zip(prompts, extra)]
        out = []
        for i, (p, r) in enumerate(zip(prompts, responses)):
            for value, column_name in ((p, pair[0]), (r, pair[1])):
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"Example {i} has no text in column {column_name!r} (got {value!r}); remove it "
                                    "or fill it in.")
            out.append([{"role": "user", "content": p}, {"role": "assistant", "content": r}])
    if system is not None:
        out = [([{"role": "system", "content": s}] if s.strip() and m[0]["role"] != "system" else []) + m
               for s, m in zip(system, out)]
    return out


@dataclass
class EncodedChat:
    """One conversation as token ids, with the label of each (-100 where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False  # max_length cut tokens off the end
    spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) character spans trained, in text
    text: str = ""

    @property
    def trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)

    def cut(self, max_length: int | None) -> "EncodedChat":
        """The example as ``max_length`` truncation leaves it (itself when it fits)."""
        if not max_length or len(self.input_ids) <= max_length:
            return self
        return EncodedChat(self.input_ids[:max_length], self.labels[:max_length], True, self.spans, self.text)


def render(tok, template: str, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                   add_generation_prompt=generation_prompt)


def _trained_spans(tok, template: str, messages, full: str, loss_on: str, i: int) -> list[tuple[int, int]]:
    """Character spans of the rendered conversation whose tokens are trained."""
    if loss_on == "all":
        return [(0, len(full))]
    turns = [k for k, m in enumerate(messages) if m["role"] == "assistant"]
    if loss_on == "last":
        turns = turns[-1:]
    spans = []
    for k in turns:
        before = render(tok, template, messages[:k], generation_prompt=True)
        through = render(tok, template, messages[:k + 1])
        if not (full.startswith(before) and full.startswith(through) and len(through) > len(before)):
            raise DataError(
                f"Example {i}: the chat template does not render the conversation's beginning as a prefix of the "
                "whole (it rewrites earlier turns, e.g. drops reasoning), so the assistant's tokens cannot be found. "
                "Pass chat_template='chatml' (or another named template), or loss_on='all'.")
        spans.append((len(before), len(through)))
    return spans


def encode(tok, template: str, messages: list[dict[str, str]], loss_on: str, max_length: int | None,
           i: int = 0) -> EncodedChat:
    """Render ``messages`` with ``template`` and tokenize it once; tokens inside a trained span keep their id as
    label, the rest get -100. The template writes every special token, so the tokenizer adds none."""
    full = render(tok, template, messages)
    spans = _trained_spans(tok, template, messages, full, loss_on, i)
    if getattr(tok, "is_fast", False):
        enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        inside = [any(a <= start < b for a, b in spans) for start, end in offsets]
    else:  # a slow tokenizer has no offsets: tokenize piece by piece along the span borders
        borders = sorted({0, len(full), *[x for span in spans for x in span]})
        ids, inside = [], []
        for a, b in zip(borders, borders[1:]):
            piece = tok(full[a:b], add_special_tokens=False)["input_ids"]
            ids += piece
            inside += [any(s <= a < e for s, e in spans)] * len(piece)
    labels = [t if keep else IGNORE for t, keep in zip(ids, inside)]
    return EncodedChat(ids, labels, spans=spans, text=full).cut(max_length)


def plain_pair(tok, prompt: str, response: str, max_length: int | None, loss_on: str = "assistant") -> EncodedChat:
    """A prompt/response pair for a tokenizer without any chat template: the prompt, a newline, the response and
    the end-of-sequence token; loss on the response and the end-of-sequence token."""
    eos = tok.eos_token or ""
    head_ids = list(tok(f"{prompt}\n")["input_ids"])
    tail_ids = list(tok(f"{response}{eos}", add_special_tokens=False)["input_ids"])
    ids = head_ids + tail_ids
    labels = ids if loss_on == "all" else [IGNORE] * len(head_ids) + tail_ids
    text = f"{prompt}\n{response}{eos}"
    spans = [(0, len(text))] if loss_on == "all" else [(len(prompt) + 1, len(text))]
    return EncodedChat(ids, labels, spans=spans, text=text).cut(max_length)


def encode_messages(tok, template: str | None, messages: list[dict[str, str]], loss_on: str,
                    max_length: int | None, i: int = 0) -> EncodedChat:
    """One conversation with ``template``; without any template, a single user/assistant pair as plain text."""
    if template is not None:
        return encode(tok, template, messages, loss_on, max_length, i)
    if len(messages) != 2 or messages[0]["role"] != "user":
        raise DataError("This tokenizer has no chat template, so multi-turn or system messages cannot be "
                        f"rendered. Pass chat_template= one of {', '.join(NAMED_TEMPLATES)} (for a base model, "
                        "'chatml' is a common choice), or give prompt/response pairs.")
    return plain_pair(tok, messages[0]["content"], messages[1]["content"], max_length, loss_on)


def encode_table(tok, table, given: dict[str, str], template_name: str | None, loss_on: str,
                 max_length: int | None) -> list[EncodedChat] | None:
    """Every example of a chat or prompt/response table encoded (None when the table is neither); ``loss_on`` is
    one of ``TrainConfig``'s, which checks it."""
    chats = conversations(table, given)
    if chats is None:
        return None
    template = chat_template_of(tok, template_name)
    return [encode_messages(tok, template, m, loss_on, max_length, i) for i, m in enumerate(chats)]

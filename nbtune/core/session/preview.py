"""``Session.preview(data)``: what training will see, before it runs: each example as rendered by the chat template,
which tokens carry the loss, token-length statistics and how many examples ``max_length`` cuts.

Numbers and text pieces only; ``nbtune.render.preview`` draws them (trained tokens highlighted, masked ones dimmed).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from nbtune.core.common.errors import NbtuneError
from nbtune.core.data.chat import IGNORE, EncodedChat


@dataclass
class Piece:
    """A run of consecutive tokens of one kind: ``trained`` (labels kept), masked, or ``cut`` by max_length."""

    text: str
    trained: bool
    cut: bool = False


@dataclass
class PreviewExample:
    index: int
    pieces: list[Piece]
    tokens: int  # after truncation
    trained: int
    truncated: bool


@dataclass
class DataPreview:
    """Rendered examples with their loss masks, and statistics over the whole data set."""

    examples: list[PreviewExample]
    count: int
    lengths: list[int]  # tokens per example before truncation
    trained_tokens: int
    total_tokens: int
    truncated: int
    no_trained_tokens: int
    max_length: int | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def length_stats(self) -> dict[str, float]:
        values = sorted(self.lengths)
        if not values:
            return {}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        return {"min": values[0], "median": statistics.median(values), "p95": pick(0.95), "max": values[-1]}

    def __repr__(self) -> str:
        from nbtune.render.preview import preview_text

        return preview_text(self)

    def _repr_html_(self) -> str:
        from nbtune.render.preview import preview_html

        return preview_html(self)


def _pieces(tok, encoded: EncodedChat, full_ids: list[int]) -> list[Piece]:
    """The rendered text split where the loss mask changes; text past ``max_length`` is marked cut."""
    kept = len(encoded.input_ids)
    flags = [label != IGNORE for label in encoded.labels] + [False] * (len(full_ids) - kept)
    if getattr(tok, "is_fast", False):
        offsets = tok(encoded.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        # each token owns the text from its start to the next token's (a space or newline the tokenizer folded away
        # stays with the token before it); the first also owns anything before it
        starts = [0] + [start for start, _ in offsets[1:]] + [len(encoded.text)]
        texts = [encoded.text[a:b] for a, b in zip(starts, starts[1:])][:len(offsets)]
    else:
        texts = [tok.decode([t]) for t in full_ids]
    pieces: list[Piece] = []
    for k, text in enumerate(texts):
        kind = (flags[k] if k < len(flags) else False, k >= kept)
        if pieces and (pieces[-1].trained, pieces[-1].cut) == kind:
            pieces[-1].text += text
        else:
            pieces.append(Piece(text, *kind))
    return pieces


def preview_data(session, data: Any, n: int = 3, **settings: Any) -> DataPreview:
    """Encode ``data`` as training would (same columns, template, ``loss_on``, ``max_length``) and describe it."""
    from nbtune.core.data.readers import load_table
    from nbtune.core.tasks.handlers import handler_for
    from nbtune.core.training.config import TrainConfig

    cfg = TrainConfig.from_kwargs(**settings)
    handler = handler_for(session)
    from nbtune.core.training.evaluation import prepare_data

    # images: a grid of augmented training views
    own = session.modality.preview(session, lambda: prepare_data(session, handler, data, cfg, None, "training"), n, cfg)
    if own is not None:
        return own
    encode_chats = getattr(handler, "encode_chats", None)
    if encode_chats is None:
        raise NbtuneError(f"preview() shows chat and prompt/response data for causal-lm sessions; this session's "
                          f"task is {session.task}.")
    untruncated = encode_chats(session, load_table(data), TrainConfig.from_kwargs(**{**settings, "max_length": None}))
    if untruncated is None:
        raise NbtuneError("preview() found no chat data: give a 'messages' column, prompt/response pairs or "
                          "instruction/output columns (plain text trains on every token).")
    encoded = [e.cut(cfg.max_length) for e in untruncated]  # as training truncates them
    examples = [PreviewExample(i, _pieces(session.tokenizer, e, full.input_ids), len(e.input_ids), e.trained,
                               e.truncated) for i, (e, full) in enumerate(zip(encoded[:n], untruncated[:n]))]
    return DataPreview(
        examples=examples, count=len(encoded), lengths=[len(e.input_ids) for e in untruncated],
        trained_tokens=sum(e.trained for e in encoded), total_tokens=sum(len(e.input_ids) for e in encoded),
        truncated=sum(e.truncated for e in encoded), no_trained_tokens=sum(e.trained == 0 for e in encoded),
        max_length=cfg.max_length, settings={"loss_on": cfg.loss_on, "chat_template": cfg.chat_template or
                                             "the tokenizer's"})

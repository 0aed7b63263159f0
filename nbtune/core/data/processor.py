"""The session's one processor slot: a tokenizer, an image processor, a feature extractor, a multimodal processor
(transformers' ``ProcessorMixin``, holding several of those), or, for a plain ``nn.Module``, any callable transform
(torchvision, timm). These helpers look at whichever it is without importing transformers."""

from __future__ import annotations

from typing import Any

# what each part of a transformers processor reads, by its attribute name on a ProcessorMixin
_PARTS = {"tokenizer": "text", "image_processor": "images", "feature_extractor": "audio", "video_processor": "video"}


def is_tokenizer(value: Any) -> bool:
    """A tokenizer of any kind (transformers' fast or slow, or one that behaves like them)."""
    return value is not None and callable(getattr(value, "convert_tokens_to_ids", None)) and hasattr(value, "pad_token")


def text_view(processor: Any) -> Any:
    """The tokenizer inside ``processor``: the processor itself when it is one, a multimodal processor's
    ``tokenizer`` part, else None (an image processor or a feature extractor reads no text)."""
    if is_tokenizer(processor):
        return processor
    part = getattr(processor, "tokenizer", None)
    return part if is_tokenizer(part) else None


def with_text_view(processor: Any, tokenizer: Any) -> Any:
    """The processor after ``session.tokenizer = tokenizer``: a multimodal processor keeps its other parts and takes
    the new tokenizer; anything else is replaced by it."""
    if processor is not None and not is_tokenizer(processor) and is_tokenizer(getattr(processor, "tokenizer", None)):
        processor.tokenizer = tokenizer
        return processor
    return tokenizer


def reads(processor: Any) -> list[str]:
    """What the processor turns into model inputs: ``text``, ``images``, ``audio``, ``video`` (empty for a bare
    transform whose input kind is not known)."""
    if processor is None:
        return []
    if is_tokenizer(processor):
        return ["text"]
    parts = [kind for name, kind in _PARTS.items() if getattr(processor, name, None) is not None]
    if parts:
        return parts
    name = type(processor).__name__
    if name.endswith("ImageProcessor") or "ImageProcessor" in name:
        return ["images"]
    if name.endswith("FeatureExtractor"):
        return ["audio"]
    return []


def describe(processor: Any) -> str | None:
    """One line for reprs and summaries: the class and what it reads (``BertTokenizer (text)``), or None."""
    if processor is None:
        return None
    kinds = reads(processor)
    return f"{type(processor).__name__} ({' + '.join(kinds)})" if kinds else type(processor).__name__


def can_save(processor: Any) -> bool:
    """Whether ``save_pretrained`` writes the processor to a folder (a Python transform cannot be written)."""
    return callable(getattr(processor, "save_pretrained", None))

"""Modalities: what a kind of model input is (text, tensors; images and audio come as files of their own).

A task says what the model predicts from its inputs; a modality says what those inputs are: how a raw value is read
(a string, a path, bytes, an array, a ``datasets`` Image/Audio cell), how one example is encoded for training (with
an RNG, for random augmentation) and for evaluation, how examples are collated into a batch, how big an example
is (for length grouping, token budgets and the memory estimate), a probe batch that checks a model still runs once
an adapter is attached, and how a column is stored in a run folder or a recipe export. Shared code (the loop,
evaluation, adapters, the memory estimate, run folders, ``Session.predict``) asks the task's modality and never reads
model input names itself.

A modality file subclasses ``Modality`` and decorates it with ``@register_modality``; a task names it in its
``modality`` attribute. Files of ``nbtune.core.data.modalities`` register themselves when the registry is first read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nbtune.core.common.errors import DataError
from nbtune.core.common.plugins import Registry

_MODALITIES = Registry("modality", "nbtune.core.data.modalities", set())
_INSTANCES: dict[type, "Modality"] = {}


class Modality:
    """Base class of one input kind; the defaults suit fixed-size inputs given as tensors or arrays."""

    name = ""
    description = ""
    # Encoding the same raw value always gives the same features: examples are encoded once and cached. A modality
    # with random training transforms (image augmentation) sets this False: each epoch then encodes each example
    # again, with an RNG seeded by (seed, epoch, example), so a resumed run sees the same augmentations.
    deterministic = True

    def source(self, data: Any, split: str | None):
        """``data`` as a table when it is a form only this modality knows (a folder of class folders for images),
        else None (the common readers take it: tables, files, datasets, lists of dicts). ``split`` is what
        ``eval_split`` named, for the evaluation part."""
        return None

    def eval_split(self, data: Any) -> str | None:
        """The split of ``data`` that evaluation uses when no evaluation data is given (an image folder's
        ``val/``), or None."""
        return None

    def read(self, value: Any, where: str) -> Any:
        """One raw value as this modality holds it (decoded, checked); a DataError naming ``where`` (e.g.
        "example 3 of column 'image'") if it is not one."""
        return value

    def encode(self, session, value: Any, train: bool, rng) -> dict[str, Any]:
        """Model inputs for one read value. ``train`` is False for evaluation and prediction (no random transform);
        ``rng`` is a ``numpy.random.Generator`` seeded for this example and epoch; None (evaluation, or a run with
        ``augment=False``) means no random transform. A modality with random transforms also takes
        ``transform=``: the user's own (``augment=`` a callable), used in its place."""
        return {"inputs": torch.as_tensor(value)}

    def collate(self, session, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch from encoded examples (and their labels): stacked tensors by default."""
        return torch.utils.data.default_collate(rows)

    def size(self, row: dict[str, Any]) -> int:
        """An encoded example's size for batching: examples of similar size are grouped, and token budgets count
        it (1 for fixed-size inputs: grouping then changes nothing)."""
        return 1

    def value_size(self, value: Any) -> int:
        """A read value's size before encoding, for grouping lazily encoded examples (1: all alike)."""
        return 1

    def batch_size(self, batch: dict[str, Any]) -> int:
        """Examples in a collated batch."""
        first = next(v for v in batch.values() if isinstance(v, (torch.Tensor, list, tuple)))
        return len(first)

    def tokens(self, batch: dict[str, Any]) -> int:
        """Positions the model processed in a batch, for the throughput figure (tokens/s); 0 where it means
        nothing."""
        return 0

    def positions(self, config: Any, size: int) -> int:
        """Sequence positions a transformer sees for one example of ``size`` (text: its tokens; an image: its
        patches), for the activation-memory estimate."""
        return size

    def preview(self, session, features_of, n: int, cfg) -> Any:
        """What ``s.preview(data)`` shows for this modality (``features_of()`` prepares the training features), or
        None for the common preview (chat data's trained tokens)."""
        return None

    def example_size(self, session, seq_len: int) -> int:
        """The size of one example that ``s.summary`` estimates memory for when none is given (text: ``seq_len``
        tokens; an image: the processor's side)."""
        return seq_len

    def measure_batch(self, session, size: int | None) -> tuple[dict[str, Any], str] | None:
        """(a one-example batch of ``size`` (None: the processor's) that a training forward can run, what it is in
        words) for measuring activation memory where no config gives the model's sizes; None: estimated instead."""
        return None

    def probe_batch(self, model: torch.nn.Module) -> dict[str, Any] | None:
        """A tiny batch the model accepts, run once after an adapter is attached to check the adapted model still
        works; None: no probe (nothing known about the inputs)."""
        return None

    def is_single(self, value: Any) -> bool:
        """Whether ``Session.predict(value)`` got one input rather than a list of them."""
        return isinstance(value, (torch.Tensor,)) and value.ndim <= 1

    def store(self, table, folder: Path):
        """The table as a Parquet or JSON Lines file can hold it, for a run folder or a recipe export under
        ``folder`` (an image modality writes its images there and keeps their paths relative to it). The columns
        that hold this modality's values are the modality's to find; text and numbers stay as they are."""
        return table

    def restore(self, table, folder: Path):
        """The inverse of ``store`` once the table is read back from a file in ``folder``."""
        return table


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: add a modality class to the registry under its ``name``."""
    return _MODALITIES.register(cls)


def unregister_modality(name: str) -> None:
    """Remove a modality registered at run time (tests, experiments)."""
    _MODALITIES.unregister(name)


def modality_names() -> list[str]:
    return _MODALITIES.names()


def get_modality(name: str) -> Modality:
    """The modality registered as ``name``: one instance per class (modalities keep no state), so the training
    loop's per-batch questions (batch size, tokens) build nothing."""
    cls = _MODALITIES.items.get(name) or next((c for c in _MODALITIES.all() if c.name == name), None)
    if cls is not None:
        if cls not in _INSTANCES:
            _INSTANCES[cls] = cls()
        return _INSTANCES[cls]
    raise DataError(f"Unknown modality {name!r}; registered: {', '.join(modality_names())}. A task names its "
                    "modality in its `modality` attribute; register a new one with @register_modality.")

"""Packing for causal-LM fine-tuning: several examples per row of ``max_length`` tokens, kept apart.

Short chat examples padded to the longest of their batch waste most of a step on padding. Packed, a row holds as
many whole examples as fit (first-fit decreasing, deterministic), each with position ids counting from 0, and the
batch carries no attention mask: transformers then builds a block-diagonal causal mask from the position ids (its
padding-free path, ``masking_utils.find_packed_sequence_indices``; flash-attention reads the same position ids),
so no token attends to another example. The first token of each example gets no label: in a row it would be
predicted from the previous example's last token.
"""

from __future__ import annotations

from typing import Any

import torch

from nbtune.core.data.features import Features

IGNORE = -100


def pack_features(features: Features, max_length: int) -> Features:
    """Rows of whole examples, each row at most ``max_length`` tokens (examples were already truncated to it)."""
    order = sorted(range(len(features)), key=lambda i: -features.lengths[i])
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        length = features.lengths[i]
        slot = next((b for b, free in enumerate(room) if free >= length), None)
        if slot is None:
            bins.append([i])
            room.append(max_length - length)
        else:
            bins[slot].append(i)
            room[slot] -= length
    rows = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for i in sorted(members):  # the data's own order inside a row
            example = features.rows[i]
            ids += example["input_ids"]
            labels += [IGNORE] + list(example["labels"][1:])
            positions += list(range(len(example["input_ids"])))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": positions})
    meta = {**features.meta, "packed_examples": len(features), "packed_rows": len(rows)}
    return Features(rows, [len(r["input_ids"]) for r in rows], meta=meta)


def packed_collator():
    """Stack packed rows: shorter rows are filled with a padding segment of its own (positions from 0, no labels),
    and no attention mask is passed, so transformers keeps the examples apart by their position ids."""

    def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, positions = [], [], []
        for r in rows:
            fill = width - len(r["input_ids"])
            ids.append(list(r["input_ids"]) + [0] * fill)
            labels.append(list(r["labels"]) + [IGNORE] * fill)
            positions.append(list(r["position_ids"]) + list(range(fill)))
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "position_ids": torch.tensor(positions)}

    return collate

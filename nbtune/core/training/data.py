"""A table -> tokenized examples -> length-grouped, dynamically padded batches (``readers`` makes the table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..errors import DataError
from .readers import load_table, read_conll  # noqa: F401 - the data API in one place


def pick_column(table, role: str, candidates: Sequence[str], given: dict[str, str], required: bool = True) -> str | None:
    """The column playing ``role``: the user's mapping first, else the first default name present."""
    columns = list(table.columns)
    if role in given:
        name = given[role]
        if name not in columns:
            raise DataError(f"Column {name!r} (for {role}) is not in the data. Columns: {columns}.")
        return name
    for name in candidates:
        if name in columns:
            return name
    if required:
        raise DataError(
            f"No {role} column found: looked for {list(candidates)}. Columns: {columns}. "
            f"Name it with columns={{'{role}': '<column>'}}."
        )
    return None


@dataclass
class Features:
    """Tokenized examples ready for a collator, with their lengths for grouping."""

    rows: list[dict[str, Any]]
    lengths: list[int]
    label_names: dict[int, str] | None = None  # names learned from the data, applied once all data is valid
    meta: dict[str, Any] = field(default_factory=dict)  # per-example data the metrics need (not model inputs)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of examples of similar length, in an order fixed by (seed, epoch).

    Uses transformers' LengthGroupedSampler for the order (random mega-batches, each sorted by length), so
    padding stays small; ``set_epoch`` makes every epoch's order reproducible, which resuming relies on.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True,
                 shuffle: bool = True):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.group, self.shuffle, self.epoch = group_by_length, shuffle, 0
        self.skip = 0  # batches to leave out at the start of the next pass (resuming mid-epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        n = len(self.lengths)
        if not self.shuffle:
            return list(range(n))
        # Epoch e uses the (e+1)-th permutation of a generator seeded with `seed`: without grouping this is
        # exactly the order of DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed)).
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch):
            torch.randperm(n, generator=generator)
        if self.group:
            from transformers.trainer_pt_utils import LengthGroupedSampler

            return list(LengthGroupedSampler(self.batch_size, lengths=self.lengths, generator=generator))
        return torch.randperm(n, generator=generator).tolist()

    def __iter__(self):
        order = self._order()
        start, self.skip = self.skip * self.batch_size, 0
        for i in range(start, len(order), self.batch_size):
            yield order[i:i + self.batch_size]

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def make_loader(features: Features, collate, batch_size: int, seed: int, shuffle: bool, group_by_length: bool):
    """A DataLoader over ``features`` with our batch sampler and its own RNG (the global one is left alone)."""
    sampler = LengthGroupedBatches(features.lengths, batch_size, seed, group_by_length, shuffle)
    return torch.utils.data.DataLoader(features, batch_sampler=sampler, collate_fn=collate,
                                       generator=torch.Generator().manual_seed(seed))

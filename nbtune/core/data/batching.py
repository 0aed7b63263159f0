"""Which examples go together in a batch, and in what order: length grouping, token budgets, evaluation order.

Padding is wasted compute, so training batches group examples of similar length: random mega-batches (the size
transformers' Trainer uses) are each sorted by length and cut into batches. The Trainer then walks each mega-batch
from its longest batch to its shortest, a length ramp repeated every mega-batch; here the batches of the whole epoch
are shuffled, the longest batch first (a run that cannot fit fails at once). With ``max_tokens_per_batch`` the data
is sorted as a whole and each batch takes as many examples as fit the budget once padded, so short examples travel
in large batches. Every order is fixed by (seed, epoch): resuming relies on it.
"""

from __future__ import annotations

import functools

import torch

MEGABATCH_BATCHES = 50


def megabatch_size(n: int, batch_size: int) -> int:
    """Examples sorted together: ``MEGABATCH_BATCHES`` batches, fewer on small data so that at least four
    mega-batches mix (the Trainer's rule). Sorting all the data at once would pad less but, where length goes with the
    label (a short positive word, a long negative one), would make batches of one label and stall learning."""
    return max(1, min(MEGABATCH_BATCHES, n // (4 * batch_size))) * batch_size


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def budget_batches(indices: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """``indices`` (sorted longest first) cut into batches whose padded size (examples x longest) fits
    ``max_tokens``; an example longer than the budget is a batch of its own."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in indices:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class LengthGroupedBatches(torch.utils.data.Sampler):
    """The batches of one pass over the data, as lists of example indices (see the module docstring).

    ``shuffle=False`` is evaluation's order: longest first when grouped (a batch that does not fit fails at once),
    else input order. Ungrouped training batches are consecutive slices of one random permutation per epoch.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True,
                 shuffle: bool = True, max_tokens: int | None = None, examples=None):
        self.lengths, self.batch_size, self.seed, self.max_tokens = lengths, batch_size, seed, max_tokens
        self.group, self.shuffle, self.epoch = group_by_length or max_tokens is not None, shuffle, 0
        self.skip = 0  # batches to leave out at the start of the next pass (resuming mid-epoch)
        self.examples = examples  # told the epoch too: lazily encoded examples seed their transforms by it

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.examples, "set_epoch"):
            self.examples.set_epoch(epoch)

    def _longest_first(self, indices: list[int]) -> list[int]:
        return sorted(indices, key=lambda i: -self.lengths[i])  # stable: equal lengths keep their random order

    @functools.cached_property
    def _sorted(self) -> list[list[int]]:
        """All examples longest first, cut into batches: evaluation's grouped order and, under a token budget, the
        batch count of every epoch (the lengths never change, so it is computed once)."""
        order = self._longest_first(list(range(len(self.lengths))))
        return budget_batches(order, self.lengths, self.max_tokens) if self.max_tokens else _chunks(
            order, self.batch_size)

    def batches(self) -> list[list[int]]:
        """The batches of the next pass, in order."""
        n = len(self.lengths)
        if not self.shuffle:
            return list(self._sorted) if self.group else _chunks(list(range(n)), self.batch_size)
        # Epoch e uses the (e+1)-th permutation of a generator seeded with `seed`.
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch):
            torch.randperm(n, generator=generator)
        order = torch.randperm(n, generator=generator).tolist()
        if not self.group:
            return _chunks(order, self.batch_size)
        if self.max_tokens:
            # sorted as a whole: every epoch has the same number of batches, which the step count relies on
            batches = budget_batches(self._longest_first(order), self.lengths, self.max_tokens)
        else:
            mega = megabatch_size(n, self.batch_size)
            batches = [b for start in range(0, n, mega)
                       for b in _chunks(self._longest_first(order[start:start + mega]), self.batch_size)]
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        # the batch holding the longest example first, as the Trainer does: a run that cannot fit fails at once
        first = max(range(len(batches)), key=lambda k: self.lengths[batches[k][0]])
        batches.insert(0, batches.pop(first))
        return batches

    def order(self) -> list[int]:
        """The example indices of the next pass, in batch order."""
        return [i for batch in self.batches() for i in batch]

    def __iter__(self):
        batches, self.skip = self.batches()[self.skip:], 0
        yield from batches

    def __len__(self) -> int:
        if self.max_tokens and self.group:  # read every step (the epoch fraction): the cached count
            return len(self._sorted)
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def make_loader(features, collate, batch_size: int, seed: int, shuffle: bool, group_by_length: bool,
                max_tokens: int | None = None):
    """A DataLoader over ``features`` with our batch sampler and its own RNG (the global one is left alone)."""
    if not shuffle and hasattr(features, "for_evaluation"):
        features = features.for_evaluation()
    sampler = LengthGroupedBatches(features.lengths, batch_size, seed, group_by_length, shuffle, max_tokens,
                                   examples=features)
    return torch.utils.data.DataLoader(features, batch_sampler=sampler, collate_fn=collate,
                                       generator=torch.Generator().manual_seed(seed))


def _rows(value, start: int, stop: int):
    return value[start:stop] if isinstance(value, (torch.Tensor, list, tuple)) else value


def split_batch(batch: dict, parts: int) -> list[dict]:
    """``batch`` cut into ``parts`` micro-batches along its first dimension. Tensors and per-example lists (prompts,
    reward inputs) are cut alike; any other value (a batch-wide setting) goes to every part as it is."""
    if parts <= 1:
        return [batch]
    size = next(len(v) for v in batch.values() if isinstance(v, (torch.Tensor, list, tuple)))
    step = max(1, -(-size // parts))
    return [{k: _rows(v, i, i + step) for k, v in batch.items()} for i in range(0, size, step)]


def to_device(batch: dict, device) -> dict:
    """The batch's tensors on ``device`` (asynchronously where it can); other values travel as they are."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

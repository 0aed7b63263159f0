"""A table -> tokenized examples -> length-grouped, dynamically padded batches (``readers`` makes the table)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from nbtune.core.common.errors import DataError
from nbtune.core.data.readers import load_table, read_conll  # noqa: F401 - the data API in one place


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
    """Examples ready for a collator, with their sizes for grouping.

    Eager (``encode`` is None): ``rows`` are the encoded examples, as text tasks make them (a fast tokenizer encodes
    a whole column at once). Lazy: ``rows`` are the read raw examples and ``encode(row, train, rng)`` makes each one
    when a batch asks for it, so a few thousand images are never held decoded at once and random training
    transforms differ every epoch. A deterministic encoding (``cache=True``) is kept once made; a random one gets a
    ``numpy`` generator seeded by (``seed``, epoch, example index), so a resumed run draws the same transforms as an
    uninterrupted one, whatever the batch order. Evaluation reads ``for_evaluation()``: no random transform.
    """

    rows: list[dict[str, Any]]
    lengths: list[int]
    label_names: dict[int, str] | None = None  # names learned from the data, applied once all data is valid
    meta: dict[str, Any] = field(default_factory=dict)  # per-example data the metrics need (not model inputs)
    encode: Callable[[dict[str, Any], bool, Any], dict[str, Any]] | None = None
    seed: int = 0
    cache: bool = True
    train: bool = True
    epoch: int = 0
    _encoded: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.encode is None:
            return self.rows[i]
        if self.cache:
            if i not in self._encoded:
                self._encoded[i] = self.encode(self.rows[i], self.train, None)
            return self._encoded[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        return self.encode(self.rows[i], self.train, rng)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next items belong to (the batch sampler calls this): it seeds random transforms."""
        self.epoch = epoch

    def for_evaluation(self) -> "Features":
        """The same examples encoded for evaluation: no random transform (a deterministic cache is shared)."""
        return self if self.encode is None or not self.train else replace(self, train=False)

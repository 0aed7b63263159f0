"""A table -> tokenized examples -> length-grouped, dynamically padded batches (``readers`` makes the table)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from nbtune.core.common.errors import DataError, few
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


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' empty cell), pandas' NA/NaT, blank text, or an empty list (of words or tags)."""
    import pandas as pd

    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def require_present(values: Sequence[Any], column: str, what: str, rows: Sequence[int] | None = None) -> None:
    """One DataError for every example without a value in ``column``: how many, which rows (``rows`` maps positions
    to the table's row numbers when some were left out before) and how to fix it."""
    missing = [i for i, v in enumerate(values) if is_missing(v)]
    if not missing:
        return
    numbers = [rows[i] if rows is not None else i for i in missing]
    shown = few(numbers, 5)
    whole = len(missing) == len(values)
    raise DataError(f"{'Every example' if whole else f'{len(missing)} of {len(values)} examples'} "
                    f"{'has' if whole else 'have'} no {what} in column {column!r} (empty, None or NaN; "
                    f"row{'s' if len(numbers) > 1 else ''} {shown}). "
                    + ("Check that the column is the right one (columns={...}) and was read correctly."
                       if whole else f"Fill them in, or drop those rows: df.dropna(subset=[{column!r}])."))


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
        return self.encode(self.rows[i], self.train, self.rng(i, self.epoch) if self.train else None)

    def rng(self, i: int, epoch: int) -> np.random.Generator:
        """The generator example ``i``'s random transforms draw from in ``epoch``: seeded by (seed, epoch, i), so
        an example is transformed alike whatever the batch order, and a preview shows what training draws."""
        return np.random.default_rng([self.seed, epoch, i])

    def follow_labels(self, names: dict[int, str] | None) -> "Features":
        """These features with their label ids renumbered to ``names``, the ids the training data's label names got:
        evaluation data learns names from its own labels too, and one that lacks a class (or has them in another
        order) would otherwise score against other ids. A name ``names`` lacks is a DataError."""
        own = self.label_names
        if not own or not names or own == names:
            return self
        used = {i for row in self.rows for i in _label_ids(_labels_of(row))}
        lookup = {name: i for i, name in names.items()}
        missing = sorted({own[i] for i in used if own.get(i) not in lookup})
        if missing:
            raise DataError(f"The evaluation data has labels {missing[:10]} that the training data does not have "
                            f"({sorted(lookup)[:10]}); evaluate on the classes the model is trained on.")
        ids = {i: lookup[own[i]] for i in used}
        rows = [_with_labels(row, _renumber(_labels_of(row), ids)) for row in self.rows]
        return replace(self, rows=rows, label_names=dict(names), _encoded={})

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next items belong to (the batch sampler calls this): it seeds random transforms."""
        self.epoch = epoch

    def for_evaluation(self) -> "Features":
        """The same examples encoded for evaluation: no random transform (a deterministic cache is shared)."""
        return self if self.encode is None or not self.train else replace(self, train=False)


def _labels_of(row: dict[str, Any]) -> Any:
    """An example's labels: in the row (eager features) or in the extra fields of a lazily encoded one."""
    return row["labels"] if "labels" in row else row.get("extra", {}).get("labels")


def _with_labels(row: dict[str, Any], labels: Any) -> dict[str, Any]:
    if "labels" in row:
        return {**row, "labels": labels}
    return {**row, "extra": {**row["extra"], "labels": labels}} if "extra" in row else row


def _label_ids(labels: Any) -> list[int]:
    """The class ids in an example's labels: one id, or one per token (ignored positions, -100, left out)."""
    if labels is None:
        return []
    values = labels if isinstance(labels, (list, tuple)) else [labels]
    return [int(v) for v in values if int(v) >= 0]


def _renumber(labels: Any, ids: dict[int, int]) -> Any:
    if labels is None:
        return None
    if isinstance(labels, (list, tuple)):
        return [ids.get(int(v), int(v)) if int(v) >= 0 else v for v in labels]
    return ids[int(labels)]

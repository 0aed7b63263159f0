"""A table -> tokenized examples -> length-grouped, dynamically padded batches (``readers`` makes the table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

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
    """Tokenized examples ready for a collator, with their lengths for grouping."""

    rows: list[dict[str, Any]]
    lengths: list[int]
    label_names: dict[int, str] | None = None  # names learned from the data, applied once all data is valid
    meta: dict[str, Any] = field(default_factory=dict)  # per-example data the metrics need (not model inputs)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

"""Data in any common form -> a table -> tokenized examples -> length-grouped, dynamically padded batches.

Accepted: pandas DataFrame, CSV/TSV/JSON/JSONL path, ``datasets.Dataset``/``DatasetDict``, a list of dicts,
a list of strings (plain text for language modelling).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DataError


def load_table(data: Any, split: str | None = None):
    """Turn ``data`` into a pandas DataFrame (one row per example). ``split`` picks from a DatasetDict."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    if isinstance(data, (str, os.PathLike)):
        return _read_file(Path(data).expanduser())
    kind = type(data).__name__
    if kind == "DatasetDict":
        if split is None:
            split = "train" if "train" in data else next(iter(data))
        if split not in data:
            raise DataError(f"The DatasetDict has no split {split!r}; splits: {list(data)}.")
        return data[split].to_pandas()
    if kind in ("Dataset", "IterableDataset") and hasattr(data, "to_pandas"):
        return data.to_pandas()
    if isinstance(data, Sequence) and not isinstance(data, (bytes, bytearray)):
        if len(data) == 0:
            raise DataError("The data is empty: give at least one example.")
        if all(isinstance(x, str) for x in data):
            return pd.DataFrame({"text": list(data)})
        if all(isinstance(x, dict) for x in data):
            return pd.DataFrame(list(data))
        raise DataError("A list of examples must hold only dicts (one per example) or only strings (plain text).")
    raise DataError(
        f"Cannot read training data of type {kind}. Pass a pandas DataFrame, a CSV/TSV/JSON/JSONL path, a "
        "datasets.Dataset or DatasetDict, a list of dicts, or a list of strings."
    )


CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio", ".annotated")


def read_conll(path: str | os.PathLike):
    """CoNLL-style token classification data: ``token<TAB>tag`` (or space-separated, last column the tag) per
    line, a blank line between sentences. Returns a DataFrame with ``tokens`` and ``tags`` lists.
    A line with a token but no tag is an error naming the file and line."""
    import pandas as pd

    sentences, tokens, tags = [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if tokens:
                    sentences.append((tokens, tags))
                    tokens, tags = [], []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) < 2 or not parts[0] or not parts[-1].strip():
                raise DataError(f"{path}, line {number}: expected 'token<TAB>tag', got {line!r}. Fix or remove that line.")
            tokens.append(parts[0])
            tags.append(parts[-1].strip())
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise DataError(f"{path} holds no sentences (token<TAB>tag lines separated by blank lines).")
    return pd.DataFrame({"tokens": [s[0] for s in sentences], "tags": [s[1] for s in sentences]})


def _read_file(path: Path):
    import pandas as pd

    if not path.exists():
        raise DataError(f"No such data file: {path}.")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix.startswith(".tsv"):
            # GLUE-style TSV: tabs, no quoting (sentences contain quote characters).
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
        if suffix.startswith(".csv"):
            return pd.read_csv(path, keep_default_na=False)
        if suffix.startswith(".jsonl"):
            return pd.read_json(path, lines=True)
        if suffix.startswith(".json"):
            try:
                return pd.read_json(path)
            except ValueError:
                return pd.read_json(path, lines=True)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in CONLL_SUFFIXES:
            return read_conll(path)
        if suffix == ".txt":
            lines = [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]
            return pd.DataFrame({"text": lines})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"Could not parse {path}: {exc}") from None
    raise DataError(f"Unknown data file type {path.suffix!r} for {path}; use .csv, .tsv, .json, .jsonl, .parquet or .txt.")


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

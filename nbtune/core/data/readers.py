"""Data in any common form -> one pandas table, one row per example.

Accepted: pandas DataFrame, a CSV/TSV/JSON/JSONL/Parquet/CoNLL/text path, ``datasets.Dataset``/``DatasetDict``, a
list of dicts, a list of strings (plain text for language modelling).

The file readers are strict: a row with the wrong number of fields, a line that is not JSON, a record with other
keys than the rest, a CoNLL line with another column count is an error naming the file, the line and what was
expected. Nothing is reinterpreted (a third column taken as the tag) or dropped without saying so.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from nbtune.core.common.errors import DataError


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
    """CoNLL-style token classification data: ``token<TAB>tag`` per line (or more columns, the tag last, as in
    CoNLL-2003), a blank line between sentences. Returns a DataFrame with ``tokens`` and ``tags`` lists.

    Every token line must have the column count of the file's first one: a line with another count is an error
    naming the file and line, never a token whose "tag" is some other column."""
    import pandas as pd

    sentences, tokens, tags = [], [], []
    columns = None
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
            if columns is None:
                columns = (len(parts), number)
            elif len(parts) != columns[0]:
                raise DataError(
                    f"{path}, line {number}: {len(parts)} columns, but the file's first token line (line {columns[1]}) "
                    f"has {columns[0]}: {line!r}. Every token line needs the same columns (token first, tag last)."
                )
            tokens.append(parts[0])
            tags.append(parts[-1].strip())
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise DataError(f"{path} holds no sentences (token<TAB>tag lines separated by blank lines).")
    return pd.DataFrame({"tokens": [s[0] for s in sentences], "tags": [s[1] for s in sentences]})


def _check_delimited(path: Path, delimiter: str, quoting: int) -> None:
    """Every row of a CSV/TSV file has as many fields as its header (pandas would pad short rows silently)."""
    opener = _open_text(path)
    with opener as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = None
        for row in reader:
            if not row:  # a blank line is not an example
                continue
            if header is None:
                header = row
                continue
            if len(row) != len(header):
                name = "tab" if delimiter == "\t" else "comma"
                raise DataError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, but the header has {len(header)} "
                    f"({', '.join(header)}). Check for a stray or missing {name} in that line"
                    + (" or a quote that is not closed" if quoting != csv.QUOTE_NONE else "") + "."
                )


def _open_text(path: Path):
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _records(path: Path, items: Iterable[tuple[str, Any]]):
    """A table from JSON records, each an object with the same keys as the first."""
    import pandas as pd

    rows, keys, first = [], None, None
    for where, item in items:
        if not isinstance(item, dict):
            raise DataError(f"{path}, {where}: expected a JSON object (one example), found {type(item).__name__}.")
        if keys is None:
            keys, first = set(item), where
        elif set(item) != keys:
            missing, extra = sorted(keys - set(item)), sorted(set(item) - keys)
            said = "; ".join(([f"lacks {missing}"] if missing else []) + ([f"has extra {extra}"] if extra else []))
            raise DataError(f"{path}, {where}: the record {said} compared with the first one ({first}). Give every "
                            "example the same fields (null where a value is empty).")
        rows.append(item)
    if not rows:
        raise DataError(f"{path} holds no examples.")
    return pd.DataFrame(rows)


def _jsonl_items(path: Path):
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield f"line {number}", json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}, line {number}: not valid JSON ({exc}). Each line of a JSONL file is one "
                                "JSON object.") from None


def _read_json(path: Path):
    import pandas as pd

    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        if text.lstrip().startswith("{") and "\n{" in text:  # JSON Lines under a .json name
            return _records(path, _jsonl_items(path))
        raise DataError(f"{path}: not valid JSON ({exc}).") from None
    if isinstance(data, list):
        return _records(path, ((f"item {i}", item) for i, item in enumerate(data)))
    if isinstance(data, dict) and data and all(isinstance(v, (list, dict)) for v in data.values()):
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{path}: the columns have different lengths {lengths}; every column needs one value "
                            "per example.")
        return pd.DataFrame(data)
    raise DataError(f"{path}: expected a list of examples (objects) or an object of equal-length columns.")


def _read_file(path: Path):
    import pandas as pd

    if not path.exists():
        raise DataError(f"No such data file: {path}.")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix.startswith(".tsv"):
            # GLUE-style TSV: tabs, no quoting (sentences contain quote characters).
            _check_delimited(path, "\t", csv.QUOTE_NONE)
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
        if suffix.startswith(".csv"):
            _check_delimited(path, ",", csv.QUOTE_MINIMAL)
            return pd.read_csv(path, keep_default_na=False)
        if suffix.startswith(".jsonl"):
            return _records(path, _jsonl_items(path))
        if suffix.startswith(".json"):
            return _read_json(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in CONLL_SUFFIXES:
            return read_conll(path)
        if suffix == ".txt":
            lines = [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]
            return pd.DataFrame({"text": lines})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"Could not parse {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    raise DataError(f"Unknown data file type {path.suffix!r} for {path}; use .csv, .tsv, .json, .jsonl, .parquet or .txt.")

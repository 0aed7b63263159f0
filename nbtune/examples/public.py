"""The public datasets the tutorials train on, from the Hugging Face hub, with a built-in sample when offline.

Every tutorial must run where only the notebook file is opened (Colab, Kaggle, a laptop), so each dataset is
read from a hub id that ``datasets`` 4.x loads without a loading script (parquet files; for datasets that still
ship a script, the hub's own parquet conversion at ``refs/convert/parquet``). Without a network (Kaggle with
Internet off, ``HF_HUB_OFFLINE=1``, CI) the loader says so in one line and returns a small sample shipped with
nbtune instead, written for this project in the same columns, so the notebook still runs end to end; its numbers
are then rough.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nbtune.core.common.hub import DATASETS_OFFLINE, hub_offline_reason

HERE = Path(__file__).resolve().parent
PARQUET_CONVERSION = "refs/convert/parquet"
# WNUT-17's tag order, for copies whose parquet schema lost the ClassLabel names
WNUT_TAGS = ["O", "B-corporation", "I-corporation", "B-creative-work", "I-creative-work", "B-group", "I-group",
             "B-location", "I-location", "B-person", "I-person", "B-product", "I-product"]


@dataclass(frozen=True)
class PublicDataset:
    """One tutorial dataset: where it lives on the hub, how its rows become the tutorial's columns, and the
    shipped sample that stands in for it offline."""

    name: str
    title: str
    hub_id: str
    config: str | None
    splits: dict[str, str]  # the tutorial's split name -> the hub's
    convert: Callable  # datasets.Dataset -> pandas.DataFrame in the tutorial's columns
    sample: Callable[[str], object]  # split -> pandas.DataFrame (the shipped sample)
    sample_note: str
    revision: str | None = None


def _sentiment_sample(split: str):
    from nbtune.examples.bundled import reviews

    train, held = reviews()
    table = train if split == "train" else held
    return table.rename(columns={"text": "sentence"}).assign(label=(table["label"] == "positive").astype(int))


def _wnut_from_hub(ds):
    import pandas as pd

    feature = ds.features["ner_tags"].feature
    names = getattr(feature, "names", None) or WNUT_TAGS
    return pd.DataFrame({"tokens": ds["tokens"], "tags": [[names[i] for i in row] for row in ds["ner_tags"]]})


def _held_out(table, split: str, held: int):
    """The sample's last ``held`` rows are its test/dev part, the rest its training part."""
    part = table.iloc[:-held] if split == "train" else table.iloc[-held:]
    return part.reset_index(drop=True)


def _wnut_sample(split: str):
    from nbtune.core.data.features import read_conll

    return _held_out(read_conll(HERE / "wnut17_sample.conll"), split, 10)


def _jsonl_sample(filename: str, held: int):
    def read(split: str):
        import pandas as pd

        rows = [json.loads(line) for line in (HERE / filename).read_text().splitlines() if line.strip()]
        return _held_out(pd.DataFrame(rows), split, held)

    return read


def _beans_from_hub(ds):
    """Beans leaf photos as (image, label name): the image an encoded ``{"bytes", "path"}`` cell, decoded only when
    training reads it."""
    import pandas as pd
    from datasets import Image

    names = ds.features["labels"].names
    ds = ds.cast_column("image", Image(decode=False))
    return pd.DataFrame({"image": ds["image"], "label": [names[i] for i in ds["labels"]]})


def _digits_sample(split: str):
    """Offline stand-in for an image dataset: scikit-learn's bundled handwritten digits (real 8x8 scans, 1,797 of
    them), enlarged to 64x64 PNG cells in the hub's image format; the last 300 are the held-out part."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    cells = []
    for scan in digits.images:
        buffer = io.BytesIO()
        Image.fromarray((scan * 15.9).astype(np.uint8)).resize((64, 64)).convert("RGB").save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": None})
    table = pd.DataFrame({"image": cells, "label": [str(t) for t in digits.target]})
    return _held_out(table, split, 300)


def _columns(*names: str):
    return lambda ds: ds.to_pandas()[list(names)]


DATASETS = {d.name: d for d in [
    PublicDataset("sst2", "SST-2 (movie review sentiment)", "stanfordnlp/sst2", None,
                  {"train": "train", "dev": "validation", "validation": "validation"},
                  _columns("sentence", "label"), _sentiment_sample,
                  "262 review sentences written for nbtune"),
    PublicDataset("wnut17", "WNUT-17 (emerging entities in social media)", "leondz/wnut_17", "wnut_17",
                  {"train": "train", "dev": "validation", "validation": "validation", "test": "test"},
                  _wnut_from_hub, _wnut_sample, "40 tweet-like sentences tagged for nbtune",
                  revision=PARQUET_CONVERSION),
    PublicDataset("scitldr", "SciTLDR (one-sentence summaries of paper abstracts)", "allenai/scitldr", "Abstract",
                  {"train": "train", "dev": "validation", "validation": "validation", "test": "test"},
                  _columns("source", "target"), _jsonl_sample("scitldr_sample.jsonl", 4),
                  "16 short abstracts with one-line summaries, written for nbtune", revision=PARQUET_CONVERSION),
    PublicDataset("gsm8k", "GSM8K (grade-school maths with worked answers)", "openai/gsm8k", "main",
                  {"train": "train", "test": "test"}, _columns("question", "answer"),
                  _jsonl_sample("gsm8k_sample.jsonl", 12),
                  "48 word problems in GSM8K's answer format, generated for nbtune"),
    PublicDataset("preferences", "UltraFeedback binarized (a chosen and a rejected answer per prompt)",
                  "HuggingFaceH4/ultrafeedback_binarized", None, {"train": "train_prefs", "test": "test_prefs"},
                  _columns("prompt", "chosen", "rejected"), _jsonl_sample("preference_sample.jsonl", 8),
                  "32 questions with a good and a bad answer, written for nbtune"),
    PublicDataset("beans", "Beans (leaf photos: angular leaf spot, bean rust, healthy)", "AI-Lab-Makerere/beans",
                  None, {"train": "train", "validation": "validation", "dev": "validation", "test": "test"},
                  _beans_from_hub, _digits_sample,
                  "scikit-learn's handwritten digits, 1,797 real scans as 64x64 images: other classes, same format",
                  revision=PARQUET_CONVERSION),
]}


def load_public(name: str, split: str = "train", n: int | None = None, verbose: bool = True):
    """Rows of public dataset ``name`` (``sst2``, ``wnut17``, ``scitldr``, ``gsm8k``, ``preferences``, ``beans``)
    as a DataFrame.

    From the hub when it can be reached; otherwise (offline, or the hub refuses) from the small sample shipped
    with nbtune, said in one printed line. ``n`` keeps the first n rows. ``DataFrame.attrs["source"]`` says
    which it was.
    """
    if name not in DATASETS:
        raise ValueError(f"No public dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    spec = DATASETS[name]
    if split not in spec.splits:
        raise ValueError(f"{spec.title} has no split {split!r}; choose one of {', '.join(spec.splits)}.")
    reason = hub_offline_reason(DATASETS_OFFLINE)  # offline: the sample at once, not after 25 s of retries
    table = None
    if reason is None:
        try:
            from datasets import load_dataset

            from nbtune.core.common.quiet import quiet_dependencies

            with quiet_dependencies():
                ds = load_dataset(spec.hub_id, spec.config, split=spec.splits[split], revision=spec.revision)
            table, source = spec.convert(ds), f"the Hugging Face hub ({spec.hub_id})"
        except Exception as exc:  # no network, hub down, dataset moved: the tutorial still runs on the sample
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}"
    if table is None:
        table, source = spec.sample(split), f"nbtune's built-in sample ({spec.sample_note})"
    table = (table.head(n) if n is not None else table).reset_index(drop=True)
    table.attrs["source"] = source
    if verbose:
        line = f"{spec.title}, {split}: {len(table):,} rows from {source}"
        if reason is not None:
            line += f", because the hub cannot be used here ({reason}); the numbers will be rough"
        print(line)
    return table

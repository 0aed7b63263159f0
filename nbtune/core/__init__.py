"""nbtune's core: plain Python over torch/transformers/peft/accelerate.

Never imports IPython, ipywidgets or matplotlib, nor the package's notebook layers (tests enforce both); the
notebook faces are thin layers over this package's public API.
"""

from .adapters import AdapterInfo, LoraTargets
from .errors import (
    AdapterError,
    CallbackError,
    CheckpointError,
    DataError,
    HeadError,
    MagicUsageError,
    MetaModelError,
    ModelLoadError,
    NbtuneError,
    OutOfMemoryError,
    RecipeError,
    SaveError,
    SelectorError,
    TaskError,
    TrainConfigError,
    TrainingError,
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
    "AdapterError",
    "AdapterInfo",
    "CallbackError",
    "CheckpointError",
    "DataError",
    "FreezeReport",
    "HeadChange",
    "HeadError",
    "LayerTree",
    "LoraTargets",
    "MagicUsageError",
    "MemoryEstimate",
    "MetaModelError",
    "ModelLoadError",
    "ModelSource",
    "ModuleInfo",
    "NbtuneError",
    "OutOfMemoryError",
    "ParamCounts",
    "RecipeError",
    "SaveError",
    "SaveReport",
    "Selection",
    "SelectorError",
    "Session",
    "Summary",
    "TaskError",
    "TrainConfigError",
    "TrainingError",
    "load",
]

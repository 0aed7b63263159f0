"""nbtune's core: plain Python over torch/transformers/peft/accelerate.

Never imports IPython, ipywidgets or matplotlib, nor the package's notebook layers (tests enforce both); the
notebook faces are thin layers over this package's public API.
"""

from nbtune._lazy import lazy_attributes

_ERRORS = ("AdapterError", "CallbackError", "CheckpointError", "DataError", "HeadError", "MagicUsageError",
           "MetaModelError", "ModelLoadError", "NbtuneError", "OutOfMemoryError", "RecipeError", "SaveError",
           "SelectorError", "TaskError", "TrainConfigError", "TrainingError")
LAZY_NAMES = {
    **{name: ".common.errors" for name in _ERRORS},
    "AdapterInfo": ".adapters", "LoraTargets": ".adapters", "FreezeReport": ".model.freeze",
    "Selection": ".model.freeze", "HeadChange": ".tasks.heads", "LayerTree": ".model.inspect",
    "ModuleInfo": ".model.inspect", "ModelSource": ".model.source", "load": ".session.loading",
    "MemoryEstimate": ".model.memory", "ParamCounts": ".model.params", "SaveReport": ".session.persist",
    "Session": ".session.session", "Summary": ".model.summary",
}
# torch and transformers load with the first name that needs them (nbtune/_lazy.py)
__getattr__, __dir__ = lazy_attributes(__name__, LAZY_NAMES, globals())

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

"""nbtune: fine-tune pretrained models inside a Jupyter notebook.

    import nbtune
    s = nbtune.load("path/or/hub-id", task="text-classification", num_labels=2)
    s.layers(); s.freeze("all"); s.unfreeze("head"); s.summary()
"""

__version__ = "0.1.0"

from .core import (  # noqa: E402
    AdapterError, AdapterInfo, FreezeReport, HeadChange, HeadError, LayerTree, LoraTargets, MemoryEstimate,
    MetaModelError, ModelLoadError, ModelSource, ModuleInfo, NbtuneError, ParamCounts, SaveError, SaveReport,
    Selection, SelectorError, Session, Summary, TaskError, load,
)
from .core.defaults import default_model_path  # noqa: E402
from .core.recipe import RecipeResult, run_recipe as finetune  # noqa: E402


def load_ipython_extension(ipython) -> None:
    """``%load_ext nbtune``: registers the %nbtune and %%finetune magics."""
    from .magics import load_ipython_extension as register

    register(ipython)

__all__ = [
    "AdapterError", "AdapterInfo", "FreezeReport", "HeadChange", "HeadError", "LayerTree", "LoraTargets",
    "MemoryEstimate", "MetaModelError", "ModelLoadError", "ModelSource", "ModuleInfo", "NbtuneError", "ParamCounts",
    "SaveError", "SaveReport", "Selection", "SelectorError", "Session", "Summary", "TaskError", "__version__",
    "RecipeResult", "default_model_path", "finetune", "load", "load_ipython_extension",
]

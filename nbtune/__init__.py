"""nbtune: fine-tune pretrained models inside a Jupyter notebook.

    import nbtune
    s = nbtune.load("path/or/hub-id", task="text-classification", num_labels=2)
    s.layers(); s.freeze("all"); s.unfreeze("head"); s.summary()
"""

import sys

from nbtune._lazy import lazy_attributes
from nbtune.core import LAZY_NAMES as CORE_NAMES
from nbtune.core.common.quiet import register_output_guard
from nbtune.core.common.version import __version__
from nbtune.core.training.progress import register_view

LAZY_NAMES = {
    **{name: ".core" for name in CORE_NAMES},
    "compare": ".core.workflows.compare", "race": ".core.workflows.compare", "runs": ".core.workflows.compare",
    "default_model_path": ".core.common.defaults", "RecipeResult": ".core.workflows.finetune",
    "finetune": ".core.workflows.finetune:run_recipe", "resume": ".core.workflows.resume",
    "runs_folder": ".core.training.run_folder", "set_runs_folder": ".core.training.run_folder",
}
# `import nbtune` imports neither torch nor transformers: each name loads what it needs when first used.
__getattr__, __dir__ = lazy_attributes(__name__, LAZY_NAMES, globals())


def _notebook_dashboard(title: str):
    from nbtune.ui.dashboard import TrainingDashboard

    return TrainingDashboard(title=title)


def _in_notebook_kernel() -> bool:
    if "ipykernel" not in sys.modules:  # not a kernel: nothing to import to find that out
        return False
    from nbtune.ui.env import kernel_shell

    return kernel_shell() is not None


# The notebook layer offers its dashboard to the core's progress="auto" (the core itself imports no UI).
register_view("notebook", _notebook_dashboard, _in_notebook_kernel)


def _held_back_displays():
    """While nbtune loads or saves, a dependency's tqdm bar drawn as a widget is held back, not shown."""
    if not _in_notebook_kernel():
        import contextlib

        return contextlib.nullcontext()
    from IPython.utils.capture import capture_output

    return capture_output(stdout=False, stderr=False, display=True)


register_output_guard(_held_back_displays)


def _register_figures(shell=None) -> None:
    """Plots for results that have one (lr_find, run comparisons) in IPython's HTML output, when IPython runs."""
    if shell is None:
        if "IPython" not in sys.modules:  # not inside IPython: nothing to register with
            return
        from IPython import get_ipython

        shell = get_ipython()
    if shell is not None and hasattr(shell, "display_formatter"):
        from nbtune.ui.figures import register

        register(shell)


_register_figures()


def load_ipython_extension(ipython) -> None:
    """``%load_ext nbtune``: registers the %nbtune and %%finetune magics."""
    from nbtune.magics import load_ipython_extension as register

    register(ipython)
    _register_figures(ipython)


__all__ = [
    "compare",
    "race",
    "runs",
    "resume",
    "runs_folder",
    "set_runs_folder",
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
    "RecipeResult",
    "SaveError",
    "SaveReport",
    "Selection",
    "SelectorError",
    "Session",
    "Summary",
    "TaskError",
    "TrainConfigError",
    "TrainingError",
    "__version__",
    "default_model_path",
    "finetune",
    "load",
    "load_ipython_extension",
]

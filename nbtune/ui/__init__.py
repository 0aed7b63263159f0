"""Notebook display: the training dashboard, the layer-freezing widget and the adapter panel.

Everything here only renders or forwards clicks to public ``Session`` methods; no training or freezing logic
lives in this package.
"""

from nbtune._lazy import lazy_attributes

LAZY_NAMES = {"AdapterPanel": ".adapter_panel", "TrainingDashboard": ".dashboard", "LayerFreezer": ".layer_widget"}
# ipywidgets, matplotlib and torch load with the view that needs them (nbtune/_lazy.py)
__getattr__, __dir__ = lazy_attributes(__name__, LAZY_NAMES, globals())

__all__ = ["AdapterPanel", "LayerFreezer", "TrainingDashboard"]

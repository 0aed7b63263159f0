"""Notebook display: the training dashboard, the layer-freezing widget and the adapter panel.

Everything here only renders or forwards clicks to public ``Session`` methods; no training or freezing logic
lives in this package.
"""

from .adapter_panel import AdapterPanel
from .dashboard import TrainingDashboard
from .layer_widget import LayerFreezer

__all__ = ["AdapterPanel", "LayerFreezer", "TrainingDashboard"]

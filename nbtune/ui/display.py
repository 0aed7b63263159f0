"""Displaying a widget so that it can be replaced later and leaves a readable picture in a saved notebook.

Two frontends' worth of differences, feature-detected rather than pinned:

- ipywidgets 8 builds a widget's output with ``_repr_mimebundle_``, so ``display(widget, display_id=True)``
  carries the display id. ipywidgets 7 (Colab) displays itself through ``_ipython_display_``, which publishes
  its own output without the id: the handle then updates nothing, and a finished dashboard was never replaced by
  its static picture. Publishing the bundle ourselves gives both versions a real display id.
- The bundle carries a static ``text/html`` and ``text/plain`` picture beside the widget view: a live frontend
  shows the widget; nbconvert without widget state, GitHub and plain viewers show the picture instead of the
  widget's ``VBox(children=...`` repr.
"""

from __future__ import annotations

from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_bundle(widget, static: dict[str, str] | None = None) -> dict[str, Any]:
    """The MIME bundle of ``widget``'s view (ipywidgets 7 or 8), with ``static`` outputs beside it."""
    if hasattr(widget, "_repr_mimebundle_"):  # ipywidgets 8
        data = dict(widget._repr_mimebundle_())
    else:  # ipywidgets 7: the same bundle its _ipython_display_ publishes
        data = {"text/plain": repr(widget)[:110],
                WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}}
    data.update(static or {})
    return data


def show_widget(widget, static: dict[str, str] | None = None):
    """Display ``widget`` with a display id; returns the handle (``update_widget`` / ``handle.update``)."""
    from IPython.display import display

    return display(widget_bundle(widget, static), raw=True, display_id=True)


def update_widget(handle, widget, static: dict[str, str] | None = None) -> None:
    """Refresh the static picture that travels with a displayed widget (the live view stays the same widget)."""
    handle.update(widget_bundle(widget, static), raw=True)

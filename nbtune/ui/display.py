"""Displaying a widget so that it can be replaced later and leaves a readable picture in a saved notebook.

Two frontends' worth of differences, feature-detected rather than pinned:

- ipywidgets 8 builds a widget's output with ``_repr_mimebundle_``, so ``display(widget, display_id=True)``
  carries the display id. ipywidgets 7 (Colab) displays itself through ``_ipython_display_``, which publishes
  its own output without the id: the handle then updates nothing, and a finished dashboard was never replaced by
  its static picture. Publishing the bundle ourselves gives both versions a real display id.
- Every widget leaves a readable picture: the dashboard's live view is replaced by its final picture; widgets that
  stay live (``WidgetPicture``) are followed by a picture output that a page shows only when the widget cannot
  be drawn (no kernel), instead of the widget's ``VBox(children=...`` repr or "model not found".
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
    """Display ``widget`` with a display id; returns the handle (``handle.update(bundle, raw=True)``)."""
    from IPython.display import display

    return display(widget_bundle(widget, static), raw=True, display_id=True)


_AREAS = (".jp-OutputArea-child", ".output_area")  # JupyterLab, Notebook 7 and nbconvert; the classic Notebook


class WidgetPicture:
    """A long-lived widget (the freezer, the adapter panel) displayed as two outputs, the widget and then its
    static picture, of which a page shows exactly one.

    JupyterLab saves no widget state by default, and its widget renderer wins over any HTML beside the view, so a
    notebook reopened after a restart showed "Error displaying widget: model not found". Two CSS rules decide
    instead: the live widget carries a rule that hides the picture's output, and the picture carries a rule that
    hides the widget's output unless a live widget is in it. With a kernel the page shows the widget; without one
    (a reopened notebook, nbconvert's HTML) the picture, and no error line. ``label`` is the widget output's text
    for text-only viewers. ``update(static)`` redraws the picture.
    """

    def __init__(self, widget, static: dict[str, str], label: str):
        import uuid

        import ipywidgets as w
        from IPython.display import display

        key = uuid.uuid4().hex[:12]
        self.picture, self.live = f"nbtune-picture-{key}", f"nbtune-live-{key}"
        hide_picture = ", ".join(f"{a}:has(.{self.picture})" for a in _AREAS)
        marker = w.HTML(f"<span class='{self.live}'></span><style>{hide_picture} {{display: none !important}}</style>",
                        layout=w.Layout(height="0px", overflow="hidden", margin="0"))
        self.holder = w.VBox([marker, widget])
        display(widget_bundle(self.holder, {"text/plain": label}), raw=True)
        self.handle = display(self._bundle(static), raw=True, display_id=True)

    def _bundle(self, static: dict[str, str]) -> dict[str, str]:
        hide_widget = ", ".join(f"{a}:has(+ {a} .{self.picture}):not(:has(.{self.live}))" for a in _AREAS)
        html = (f"<div class='{self.picture}'><style>{hide_widget} {{display: none}}</style>"
                f"{static.get('text/html', '')}</div>")
        return {**static, "text/html": html}

    def update(self, static: dict[str, str]) -> None:
        self.handle.update(self._bundle(static), raw=True)

"""Text and HTML renderings of nbtune's core objects.

Pure string builders: no IPython, ipywidgets or matplotlib, so core objects can use them for
``__repr__`` and ``_repr_html_`` and every view has a text fallback.
"""

"""The layer-freezing widget: a lazily built module tree with a checkbox per module.

Ticking a box calls ``Session.unfreeze(name)``, clearing it ``Session.freeze(name)``: the same calls as code.
The widget listens to the session, so a freeze typed in another cell shows up here too. Children are built
only when a row is opened, so a 7B-sized model on the meta device opens at once.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nbtune.core.common.changes import Change
from nbtune.core.common.errors import NbtuneError
from nbtune.core.model.inspect import can_train, trainable_counts, trainable_state
from nbtune.core.model.params import param_numel
from nbtune.render.format import esc, human_count, message, muted
from nbtune.render.tree import state_mark
from nbtune.ui.display import WidgetPicture


class _Row:
    """One module: expand button, checkbox, label, and a (lazily filled) box of child rows."""

    def __init__(self, owner: "LayerFreezer", name: str, module: nn.Module, full_name: bool = False):
        import ipywidgets as w

        self.owner, self.name, self.module, self.full_name = owner, name, module, full_name
        self.children: list[_Row] | None = None
        has_kids = any(True for _ in module.children())
        self.expand = w.Button(description="+" if has_kids else "", disabled=not has_kids,
                               layout=w.Layout(width="30px", height="24px", padding="0"))
        self.checkbox = w.Checkbox(value=False, indent=False, layout=w.Layout(width="22px"))
        self.label = w.HTML()
        self.box = w.VBox(layout=w.Layout(margin="0 0 0 22px", display="none"))
        self.widget = w.VBox([w.HBox([self.expand, self.checkbox, self.label]), self.box])
        self.expand.on_click(self.toggle)
        self.checkbox.observe(self._on_check, names="value")
        self.refresh()

    @property
    def selector(self) -> str:
        return self.name or "all"

    def toggle(self, _button=None) -> None:
        """Open or close this row, building the child rows the first time."""
        if self.children is None:
            self.children = [_Row(self.owner, f"{self.name}.{n}" if self.name else n, m)
                             for n, m in self.module.named_children()]
            self.box.children = [c.widget for c in self.children]
        opening = self.box.layout.display == "none"
        self.box.layout.display = "flex" if opening else "none"
        self.expand.description = "-" if opening else "+"

    def _on_check(self, change) -> None:
        if self.owner.updating:
            return
        self.owner.apply("unfreeze" if change["new"] else "freeze", self.selector, self)

    def refresh(self) -> None:
        named = list(self.module.named_parameters(prefix=self.name))
        total, trainable = trainable_counts(named)
        state = trainable_state(trainable, total)
        self.state = state
        self.owner.updating = True
        try:
            # A partly trainable subtree shows ticked, so one click freezes all of it (the common wish after
            # attaching LoRA); ticking again unfreezes all of it.
            self.checkbox.value = state != "none"
            self.checkbox.disabled = not can_train(named)  # only packed 4/8-bit weights: an adapter trains them
        finally:
            self.owner.updating = False
        shown_name = self.name if self.full_name else self.name.rsplit(".", 1)[-1]
        shown_name = shown_name or type(self.module).__name__
        shown = {"all": "trainable", "none": "frozen", "partial": f"partly: {human_count(trainable)}"}[state]
        self.label.value = (f"<span style='font-family:monospace'>{esc(shown_name)}</span> "
                            f"{muted(f'{type(self.module).__name__}, {human_count(total)}')} {state_mark(state, shown)}")
        for child in self.children or []:
            child.refresh()


class LayerFreezer:
    """Tree of checkboxes over ``session.model`` with a filter box, a selector box and a live summary.

    ``display(LayerFreezer(s))`` or ``%nbtune layers --widget``. Changes go through ``Session.freeze``/``unfreeze``.
    """

    def __init__(self, session, batch_size: int = 8, seq_len: int = 128):
        import ipywidgets as w

        self.session, self.batch_size, self.seq_len = session, batch_size, seq_len
        self.updating = False
        self.handle = None  # set when displayed
        self.summary = w.HTML()
        self.message = w.HTML()
        self.filter = w.Text(placeholder="filter modules (substring)", continuous_update=False,
                             layout=w.Layout(width="40%"))
        self.selector = w.Text(placeholder="selector: encoder.layer.[0-3], qkv, type:LayerNorm, re:...",
                               continuous_update=False, layout=w.Layout(width="40%"))
        self.preview = w.HTML()
        self.freeze_button = w.Button(description="Freeze", icon="lock")
        self.unfreeze_button = w.Button(description="Unfreeze", icon="unlock")
        self.root = _Row(self, "", session.model)
        self.root.toggle()
        self.filtered = w.VBox()
        self._filter_rows: list[_Row] = []  # rows shown while the filter box holds text
        self.filter.observe(self._on_filter, names="value")
        self.selector.observe(self._on_selector, names="value")
        self.freeze_button.on_click(lambda _: self.apply("freeze", self.selector.value.strip(), None))
        self.unfreeze_button.on_click(lambda _: self.apply("unfreeze", self.selector.value.strip(), None))
        self.widget = w.VBox([
            self.summary,
            w.HBox([self.selector, self.freeze_button, self.unfreeze_button]), self.preview,
            self.filter, self.message, self.filtered, self.root.widget,
        ])
        self._listener = self._on_session_change
        session.add_listener(self._listener)
        self._update_summary()

    def _ipython_display_(self) -> None:
        self.handle = WidgetPicture(self.widget, self.static_bundle(),
                                    "layer-freezing widget (live in a kernel); its picture follows")

    def static_bundle(self, summary=None) -> dict[str, str]:
        """The picture a saved notebook keeps: the summary and the layer tree as they are now (HTML and text)."""
        summary = summary or self.session.summary(self.batch_size, self.seq_len)
        tree = self.session.layers(depth=3)
        return {"text/html": f"<div class='nbtune-freezer'>{summary._repr_html_()}{tree._repr_html_()}</div>",
                "text/plain": f"{summary!r}\n\n{tree!r}"}

    # -- actions (all through the public Session API) ------------------------------------------------
    def apply(self, action: str, selector: str, row: _Row | None) -> None:
        if not selector:
            self.message.value = message("Type a selector first.", "error")
            return
        try:
            report = getattr(self.session, action)(selector)
        except NbtuneError as exc:
            self.message.value = message(str(exc), "error")
            if row is not None:
                row.refresh()
            return
        self.message.value = message(repr(report).splitlines()[0], "ok")

    def _on_session_change(self, kind: Change) -> None:
        if kind is Change.MODEL:  # peft wrapped or merged the model, or the task changed: a new object to show
            self.root = _Row(self, "", self.session.model)
            self.root.toggle()
            self.widget.children = (*self.widget.children[:-1], self.root.widget)
            self.filtered.children = []
        self.refresh()

    def refresh(self) -> None:
        self.root.refresh()
        for row in self._filter_rows:
            row.refresh()
        summary = self._update_summary()
        if self.handle is not None:  # keep the saved picture in step with the model
            self.handle.update(self.static_bundle(summary))

    def _update_summary(self):
        summary = self.session.summary(self.batch_size, self.seq_len)
        self.summary.value = summary._repr_html_()
        return summary

    def _on_filter(self, change) -> None:
        text = change["new"].strip()
        if not text:
            self._filter_rows = []
            self.filtered.children = []
            self.root.widget.layout.display = "flex"
            self.message.value = ""  # the match count belonged to the filter just cleared
            return
        hits = [(n, m) for n, m in self.session.model.named_modules() if n and text in n][:200]
        self._filter_rows = [_Row(self, n, m, full_name=True) for n, m in hits]  # six "query" rows need their paths
        self.filtered.children = [r.widget for r in self._filter_rows]
        self.root.widget.layout.display = "none"
        self.message.value = f"{len(hits)} modules match {esc(text)!s}" + (" (first 200)" if len(hits) == 200 else "")

    def _on_selector(self, change) -> None:
        text = change["new"].strip()
        if not text:
            self.preview.value = ""
            return
        try:
            selection = self.session.select(text)
        except NbtuneError as exc:
            self.preview.value = message(str(exc), "error")
            return
        params = dict(self.session.model.named_parameters())
        count = sum(param_numel(params[n]) for n in selection.params if n in params)
        names = [m for ms in selection.matches.values() for m in ms]
        shown = ", ".join(names[:8]) + (f", ... (+{len(names) - 8})" if len(names) > 8 else "")
        self.preview.value = (f"would affect {len(selection.params)} tensors, {human_count(count)} parameters: "
                              f"<code>{esc(shown)}</code>")

    def close(self) -> None:
        self.session.remove_listener(self._listener)
        self.widget.close()

    def row(self, name: str) -> Any:
        """The row of module ``name``, opening its ancestors (for tests and scripted use)."""
        node = self.root
        if not name:
            return node
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            if node.children is None:
                node.toggle()
            target = ".".join(parts[:i])
            node = next(c for c in node.children if c.name == target)
        return node

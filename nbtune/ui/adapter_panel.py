"""The adapter panel: pick a PEFT method, set its parameters, see the cost, attach.

The method list and each method's form come from the adapter registry (``nbtune.core.adapters``): a method
registered in its own file shows up here with no change to this file. Attach calls ``Session.add_adapter``, the
same function as code and the magic; methods with a ``targets`` setting get the model's Linear groups as
checkboxes, with the parameters each adds per unit of rank.
"""

from __future__ import annotations

from typing import Any

from nbtune.core.adapters import all_methods, get_method
from nbtune.core.common.errors import NbtuneError
from nbtune.render.format import esc, human_count, message
from nbtune.ui.display import WidgetPicture

_QKV = {"query", "key", "value", "q_proj", "k_proj", "v_proj", "c_attn", "q", "k", "v", "query_key_value"}


def _widget_for(field):
    """An ipywidget for one registry ``Field``."""
    import ipywidgets as w

    label = field.name.replace("_", " ")
    if field.kind == "bool":
        return w.Checkbox(value=bool(field.default), description=label, indent=False)
    if field.kind == "choice":
        return w.Dropdown(options=list(field.choices), value=field.default, description=label)
    if field.kind == "int":
        low = int(field.minimum if field.minimum is not None else 0)
        high = int(field.maximum if field.maximum is not None else 1_000_000)
        return w.BoundedIntText(value=field.default if field.default is not None else low, min=low, max=high,
                                description=label)
    if field.kind == "float":
        if field.minimum is not None and field.maximum is not None:
            return w.BoundedFloatText(value=field.default or 0.0, min=field.minimum, max=field.maximum, step=0.01,
                                      description=label)
        # no default (e.g. LoRA's alpha = 2*r): an empty box means "use the method's default"
        return w.Text(value="" if field.default is None else str(field.default), placeholder="default",
                      description=label)
    return w.Text(value=field.default or "", placeholder=field.help, description=label)


class AdapterPanel:
    """``display(AdapterPanel(s))`` or ``%nbtune adapters``: a form over ``Session.add_adapter``."""

    def __init__(self, session):
        import ipywidgets as w

        self.session = session
        self.handle = None  # set when displayed
        methods = all_methods()
        self.method = w.Dropdown(options=[(m.label, m.name) for m in methods], value=methods[0].name,
                                 description="method")
        self.name = w.Text(value="default", description="name")
        self.inputs: dict[str, dict[str, Any]] = {}  # method -> field name -> widget
        self.targets = {}
        self.cost = w.HTML()
        self.result = w.HTML()
        self.attach_button = w.Button(description="Attach", button_style="primary", icon="plus")
        self.attach_button.on_click(lambda _: self.attach())
        try:
            groups = list(session.lora_targets())
        except NbtuneError:
            groups = []
        for g in groups:
            box = w.Checkbox(value=g.short_name in _QKV, indent=False,
                             description=f"{g.short_name} ({g.type} x{g.count}, {g.params_per_rank:,} per rank)",
                             layout=w.Layout(width="auto"))
            box.observe(lambda _: self._update_cost(), names="value")
            self.targets[g.short_name] = (box, g)
        for m in methods:
            self.inputs[m.name] = {f.name: _widget_for(f) for f in m.fields if f.form and f.kind != "targets"}
            for widget in self.inputs[m.name].values():
                widget.observe(lambda _: self._update_cost(), names="value")
        self.method.observe(lambda _: self._layout(), names="value")
        self.method.observe(lambda _: setattr(self.result, "value", ""), names="value")  # no stale result line
        self.form = w.VBox()
        self.widget = w.VBox([w.HBox([self.method, self.name]), self.form, self.cost,
                              self.attach_button, self.result])
        self._layout()

    def _ipython_display_(self) -> None:
        self.handle = WidgetPicture(self.widget, self.static_bundle(), "adapter form (live in a kernel); its picture follows")

    def static_bundle(self) -> dict[str, str]:
        """The picture a saved notebook keeps: the adapters attached so far, or the form's current choice."""
        attached = self.session.adapters
        text = ("adapters attached: " + ", ".join(f"{a.name} ({a.method}, {a.params:,} parameters)" for a in attached)
                if attached else f"adapter form: {self.spec.label} (nothing attached yet)")
        return {"text/plain": text, "text/html": f"<div class='nbtune-adapters'>{esc(text)}</div>"}

    @property
    def spec(self):
        return get_method(self.method.value)

    def _layout(self) -> None:
        import ipywidgets as w

        spec = self.spec
        widgets = list(self.inputs[spec.name].values())
        rows = [w.HTML(f"<small>{esc(spec.summary)}</small>")] if spec.summary else []
        rows += [w.HBox(widgets[i:i + 3]) for i in range(0, len(widgets), 3)]
        if any(f.kind == "targets" for f in spec.fields):
            rows += [w.HTML("<b>targets</b>"), w.VBox([box for box, _ in self.targets.values()])]
        elif not widgets:
            rows.append(w.HTML(f"{esc(spec.label)} uses peft's default targets for this architecture."))
        self.form.children = rows
        self._update_cost()

    def chosen_targets(self) -> list[str]:
        return [name for name, (box, _) in self.targets.items() if box.value]

    def settings(self) -> dict[str, Any]:
        """The form's values as ``add_adapter`` settings (empty boxes: the method's defaults)."""
        spec = self.spec
        out: dict[str, Any] = {}
        for field in spec.fields:
            if field.kind == "targets":
                out[field.name] = self.chosen_targets()
                continue
            widget = self.inputs[spec.name].get(field.name)
            if widget is None:
                continue
            value = widget.value
            if field.kind in ("float", "text") and isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
                if field.kind == "float":
                    try:
                        value = float(value)
                    except ValueError:
                        raise NbtuneError(f"{field.name} must be a number; got {value!r}.") from None
            out[field.name] = value
        return out

    def _update_cost(self) -> None:
        spec = self.spec
        if spec.estimate is None or not self.targets:
            self.cost.value = ""
            return
        per_rank = sum(g.params_per_rank for box, g in self.targets.values() if box.value)
        try:
            settings = self.settings()
        except NbtuneError:
            return
        self.cost.value = (f"{esc(spec.label)} adds about <b>{human_count(spec.estimate(per_rank, settings))}</b> "
                           "trainable parameters")

    def attach(self) -> None:
        """Attach the chosen method through the Session API; errors are shown, the session is unchanged."""
        name = self.name.value.strip() or "default"
        s = self.session
        try:
            info = s.add_adapter(self.method.value, name=name, **self.settings())
        except NbtuneError as exc:
            self.result.value = message(str(exc), "error")
            return
        summary = s.summary()
        if self.handle is not None:
            self.handle.update(self.static_bundle())
        self.result.value = message(f"attached {info.name}: {info.method}, {info.params:,} parameters; "
                                    f"{summary.trainable:,} of {summary.total:,} trainable", "ok")

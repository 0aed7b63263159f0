"""The adapter panel: pick a PEFT method, set its parameters, see the cost, attach.

The Attach button calls the same ``Session.add_*`` method as code; for LoRA each target group is a checkbox
showing the parameters it adds at the chosen rank.
"""

from __future__ import annotations

from ..core.errors import NbtuneError
from ..render.format import esc, human_count

METHODS = {"LoRA": "lora", "Prompt tuning": "prompt", "Prefix tuning": "prefix", "P-tuning": "ptuning", "IA3": "ia3"}


class AdapterPanel:
    """``display(AdapterPanel(s))`` or ``%nbtune adapters``: a form over ``Session.add_lora`` & co."""

    def __init__(self, session):
        import ipywidgets as w

        self.session = session
        self.method = w.Dropdown(options=list(METHODS), value="LoRA", description="method")
        self.name = w.Text(value="default", description="name")
        self.r = w.BoundedIntText(value=8, min=1, max=4096, description="r")
        self.alpha = w.FloatText(value=16.0, description="alpha")
        self.dropout = w.BoundedFloatText(value=0.05, min=0.0, max=0.99, step=0.01, description="dropout")
        self.dora = w.Checkbox(value=False, description="DoRA")
        self.rslora = w.Checkbox(value=False, description="rsLoRA")
        self.n_tokens = w.BoundedIntText(value=20, min=1, max=10000, description="tokens")
        self.init_text = w.Text(placeholder="optional: text to initialise the prompt", description="init text")
        self.encoder = w.Dropdown(options=["MLP", "LSTM"], value="MLP", description="encoder")
        self.targets = {}
        self.cost = w.HTML()
        self.result = w.HTML()
        self.attach_button = w.Button(description="Attach", button_style="primary", icon="plus")
        self.attach_button.on_click(lambda _: self.attach())
        try:
            groups = list(session.lora_targets())
        except NbtuneError:
            groups = []
        qkv = {"query", "key", "value", "q_proj", "k_proj", "v_proj", "c_attn", "q", "k", "v", "query_key_value"}
        for g in groups:
            box = w.Checkbox(value=g.short_name in qkv, indent=False,
                             description=f"{g.short_name} ({g.type} x{g.count}, {g.params_per_rank:,} per rank)",
                             layout=w.Layout(width="auto"))
            box.observe(lambda _: self._update_cost(), names="value")
            self.targets[g.short_name] = (box, g)
        self.r.observe(lambda _: self._update_cost(), names="value")
        self.method.observe(lambda _: self._layout(), names="value")
        self.form = w.VBox()
        self.widget = w.VBox([w.HBox([self.method, self.name]), self.form, self.cost,
                              self.attach_button, self.result])
        self._layout()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _layout(self) -> None:
        import ipywidgets as w

        method = METHODS[self.method.value]
        if method == "lora":
            rows = [w.HBox([self.r, self.alpha, self.dropout]), w.HBox([self.dora, self.rslora]),
                    w.HTML("<b>targets</b>"), w.VBox([box for box, _ in self.targets.values()])]
        elif method == "prompt":
            rows = [self.n_tokens, self.init_text]
        elif method == "prefix":
            rows = [self.n_tokens]
        elif method == "ptuning":
            rows = [self.n_tokens, self.encoder]
        else:
            rows = [w.HTML("IA3 uses peft's default attention and feed-forward targets for this architecture.")]
        self.form.children = rows
        self._update_cost()

    def chosen_targets(self) -> list[str]:
        return [name for name, (box, _) in self.targets.items() if box.value]

    def _update_cost(self) -> None:
        if METHODS[self.method.value] != "lora":
            self.cost.value = ""
            return
        per_rank = sum(g.params_per_rank for box, g in self.targets.values() if box.value)
        self.cost.value = f"LoRA adds <b>{human_count(per_rank * self.r.value)}</b> trainable parameters at r={self.r.value}"

    def attach(self) -> None:
        """Attach the chosen method through the Session API; errors are shown, the session is unchanged."""
        method = METHODS[self.method.value]
        name = self.name.value.strip() or "default"
        s = self.session
        try:
            if method == "lora":
                info = s.add_lora(r=self.r.value, alpha=self.alpha.value, dropout=self.dropout.value,
                                  targets=self.chosen_targets(), dora=self.dora.value, rslora=self.rslora.value, name=name)
            elif method == "prompt":
                info = s.add_prompt_tuning(n_tokens=self.n_tokens.value, init_text=self.init_text.value or None, name=name)
            elif method == "prefix":
                info = s.add_prefix_tuning(n_tokens=self.n_tokens.value, name=name)
            elif method == "ptuning":
                info = s.add_ptuning(n_tokens=self.n_tokens.value, encoder=self.encoder.value, name=name)
            else:
                info = s.add_ia3(name=name)
        except NbtuneError as exc:
            self.result.value = f"<span style='color:#b00'>{esc(exc)}</span>"
            return
        summary = s.summary()
        self.result.value = (f"<span style='color:#1a7f37'>attached {esc(info.name)}: {esc(info.method)}, "
                             f"{info.params:,} parameters; {summary.trainable:,} of {summary.total:,} trainable</span>")

"""Widgets without a browser: set values, click buttons, check the model; the dashboard's logic."""

from __future__ import annotations

import pytest
import torch

import nbtune
from nbtune.core.training.events import StepEnded
from nbtune.render.format import BADGES
from nbtune.ui import AdapterPanel, LayerFreezer, TrainingDashboard

from training_helpers import toy_rows


@pytest.fixture
def bert(tiny_dirs):
    torch.manual_seed(0)
    return nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)


def test_checkbox_freezes_and_summary_follows(bert):
    w = LayerFreezer(bert)
    assert w.summary.value == bert.summary()._repr_html_()
    row = w.row("bert.encoder.layer.0")
    assert row.checkbox.value is True
    row.checkbox.value = False  # a click
    assert not any(p.requires_grad for p in bert.model.bert.encoder.layer[0].parameters())
    assert bert.freeze_log[-1] == ("freeze", ("bert.encoder.layer.0",))
    assert w.row("bert.encoder").state == "partial" and "partly" in w.row("bert.encoder").label.value
    assert w.summary.value == bert.summary()._repr_html_()
    row.checkbox.value = True
    assert all(p.requires_grad for p in bert.model.bert.encoder.layer[0].parameters())


def test_code_changes_update_the_widget(bert):
    w = LayerFreezer(bert)
    head = w.row("classifier")
    bert.freeze("classifier")
    assert head.checkbox.value is False and head.state == "none"
    bert.freeze("all")
    assert w.root.checkbox.value is False
    bert.unfreeze("all")
    assert w.root.checkbox.value is True and head.checkbox.value is True


def test_selector_box_previews_and_applies(bert):
    w = LayerFreezer(bert)
    w.selector.value = "encoder.layer.[1]"
    assert "would affect" in w.preview.value and "bert.encoder.layer.1" in w.preview.value
    w.freeze_button.click()
    assert not any(p.requires_grad for p in bert.model.bert.encoder.layer[1].parameters())
    w.selector.value = "encoder.layer.*.atention"
    assert "matches nothing" in w.preview.value
    flags = {n: p.requires_grad for n, p in bert.model.named_parameters()}
    w.unfreeze_button.click()
    assert "matches nothing" in w.message.value
    assert flags == {n: p.requires_grad for n, p in bert.model.named_parameters()}


def test_filter_box(bert):
    w = LayerFreezer(bert)
    w.filter.value = "LayerNorm"
    assert w.filtered.children and all("LayerNorm" in r.name for r in w._filter_rows)
    w._filter_rows[0].checkbox.value = False
    assert not bert.model.get_submodule(w._filter_rows[0].name).weight.requires_grad
    w.filter.value = ""
    assert not w.filtered.children


def test_filter_rows_show_full_names(bert):
    w = LayerFreezer(bert)
    w.filter.value = "query"
    labels = [r.label.value for r in w._filter_rows]
    assert len(labels) == 2 and len(set(labels)) == 2  # one "query" per layer, told apart by their paths
    assert "bert.encoder.layer.1.attention.self.query" in labels[1]


def test_one_click_freezes_a_partly_trainable_subtree(bert):
    w = LayerFreezer(bert)
    bert.freeze("bert.encoder.layer.0.attention")
    encoder = w.row("bert.encoder")
    assert encoder.state == "partial" and encoder.checkbox.value is True  # shown ticked: something trains
    encoder.checkbox.value = False  # one click
    assert not any(p.requires_grad for p in bert.model.bert.encoder.parameters()) and encoder.state == "none"
    encoder.checkbox.value = True
    assert all(p.requires_grad for p in bert.model.bert.encoder.parameters()) and encoder.state == "all"


def test_a_trained_head_under_lora_reads_trainable_and_clicks_work(bert):
    bert.add_lora(r=4, targets=["query", "value"])  # peft wraps the head in ModulesToSaveWrapper
    w = LayerFreezer(bert)
    head_name = next(n for n, m in bert.model.named_modules() if type(m).__name__ == "ModulesToSaveWrapper")
    head = w.row(head_name)
    assert head.state == "all" and head.checkbox.value is True  # its frozen backup copy does not count
    head.checkbox.value = False
    assert head.state == "none" and "froze" in w.message.value
    head.checkbox.value = True
    assert head.state == "all" and "unfroze 0" not in w.message.value


def test_live_widgets_are_followed_by_a_picture_that_follows_the_model(bert, shell, monkeypatch):
    """The freezer and the panel: a widget output, then a picture output (display id) kept in step with the model;
    CSS in each decides which one a page shows (the widget with a kernel, the picture without)."""
    published = []  # what the kernel would send: the bundle and its display id (the shell makes display() publish)
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append((data, kw.get("transient") or {})))
    w = LayerFreezer(bert)
    w._ipython_display_()
    (view, _), (picture, transient) = published[-2:]
    widget_view = "application/vnd.jupyter.widget-view+json"
    assert view[widget_view]["model_id"] == w.handle.holder.model_id and "live in a kernel" in view["text/plain"]
    assert widget_view not in picture and transient.get("display_id")
    key = w.handle.picture
    assert f"class='{key}'" in picture["text/html"] and "nbtune-tree" in picture["text/html"]
    assert f":has(.{key})" in w.handle.holder.children[0].value  # the live widget hides the picture
    assert "VBox(" not in picture["text/plain"] and "trainable" in picture["text/plain"]
    before = picture["text/html"]
    w.row("bert.encoder").checkbox.value = False
    updated, again = published[-1]
    assert again["display_id"] == transient["display_id"] and updated["text/html"] != before  # same output, new picture
    assert f"class='{key}'" in updated["text/html"]
    panel = AdapterPanel(bert)
    panel._ipython_display_()
    assert "nothing attached yet" in published[-1][0]["text/plain"]
    panel.attach()
    assert "adapters attached: default (lora" in published[-1][0]["text/plain"]


def test_tree_is_built_lazily_for_huge_meta_models(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                vocab_size=32000, architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path)
    s = nbtune.load(tmp_path, weights=False, tokenizer=False)
    w = LayerFreezer(s)
    assert [c.name for c in w.root.children] == ["model", "lm_head"]
    assert w.row("model").children is None  # not built until opened
    assert "6.74B" in w.summary.value


def test_adapter_panel_attaches_through_the_session(bert):
    panel = AdapterPanel(bert)
    assert set(panel.chosen_targets()) == {"query", "key", "value"}
    panel.targets["key"][0].value = False
    panel.inputs["lora"]["r"].value = 4
    assert "LoRA adds about" in panel.cost.value
    from nbtune.render.format import human_count

    assert human_count(bert.lora_targets().cost(["query", "value"], r=4)) in panel.cost.value
    panel.attach_button.click()
    info = bert.adapters[0]
    assert info.method == "lora" and info.settings["targets"] == ["query", "value"] and "attached" in panel.result.value
    lora_layers = {n.split(".")[-4] for n in bert.trainable_parameters() if "lora_A" in n}
    assert lora_layers == {"query", "value"}


def test_adapter_panel_shows_errors_and_changes_nothing(cnn):
    s = nbtune.load(cnn)
    panel = AdapterPanel(s)
    panel.method.value = "prompt"
    model = s.model
    panel.attach_button.click()
    assert BADGES["error"] in panel.result.value and s.model is model and s.adapters == []


def test_dashboard_stop_and_static_output(bert, monkeypatch):
    import nbtune.ui.dashboard as dash_mod

    monkeypatch.setattr(dash_mod, "kernel_shell", lambda: object())  # pretend a widget frontend
    dash = TrainingDashboard(title="test")
    clicks = {"n": 0}

    def click_at_step_3(event, control):
        if isinstance(event, StepEnded) and event.run_step == 3:
            dash.widgets["stop"].click()
            clicks["n"] += 1

    run = bert.train(toy_rows(64), eval=toy_rows(16), callbacks=[click_at_step_3, dash], epochs=3, batch_size=8,
                     log=False)
    assert clicks["n"] == 1
    assert run.reason == "stopped by the Stop button" and run.steps == 3 and not run.cancelled
    assert dash.widgets["stop"].disabled and dash.widgets["bar"].value == 3
    bundle = dash.final_bundle
    assert "image/png" not in bundle and bundle["text/html"].count("<img") == 1 and "stopped by the Stop button" in bundle["text/plain"]
    assert dash.redraws <= 2 + 2 * run.seconds + 2  # throttled: about two redraws a second at most


def test_live_redraws_keep_within_their_share_of_the_run(bert, monkeypatch):
    """A redraw costs ~0.1 s on a small CPU; live ones may take at most DRAW_SHARE of the run at any moment."""
    import time

    import nbtune.ui.dashboard as dash_mod

    monkeypatch.setattr(dash_mod, "kernel_shell", lambda: object())
    monkeypatch.setattr(dash_mod, "DRAW_SHARE", 0.02)  # the rule at a share a short test run can show
    dash = TrainingDashboard(title="budget", redraw_every=0.0)
    drawn = []
    real_png = dash.plot.png

    def slow_png(rows, title="", fitted=True):
        start = time.perf_counter()
        time.sleep(0.05)
        out = real_png(rows, title, fitted)
        drawn.append(time.perf_counter() - start)
        return out

    dash.plot.png = slow_png
    def slow_step(event, control):  # steps of a real model's length: the run lasts ~8 s
        if isinstance(event, StepEnded):
            time.sleep(0.06)

    run = bert.train(toy_rows(256), callbacks=[slow_step, dash], epochs=2, batch_size=4, log=False)
    live = sum(drawn) - drawn[-1]  # the last one is the static picture, drawn after the run
    assert live <= dash_mod.DRAW_SHARE * run.seconds + max(drawn)
    assert len(drawn) >= 2  # it did draw while training


def test_dashboard_text_mode_outside_a_kernel(bert, capsys):
    dash = TrainingDashboard(title="plain")
    bert.train(toy_rows(32), callbacks=[dash], epochs=1, batch_size=8, log=False)
    out = capsys.readouterr().out
    assert "plain: 4 steps" in out and "step 4/4" in out and "completed at step 4" in out


def test_tree_follows_a_new_model_object(bert):
    w = LayerFreezer(bert)
    bert.add_lora(r=2)
    assert w.root.module is bert.model  # the peft-wrapped model, rebuilt on the 'model' change
    assert w.summary.value == bert.summary()._repr_html_()
    lora = w.row("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A")
    assert lora.checkbox.value is True


def test_dropped_widgets_are_not_kept_alive_by_the_session(bert):
    import gc
    import weakref

    import ipywidgets

    freezer = LayerFreezer(bert)
    gone = weakref.ref(freezer)
    ipywidgets.Widget.close_all()  # its output is gone (cleared, replaced): only the session could still hold it
    del freezer
    gc.collect()
    assert gone() is None
    bert.freeze("all")  # and the change notifies nobody dead
    assert len(bert._listeners) == 0
    calls = []
    bert.add_listener(lambda change: calls.append(change))  # a plain function is kept: nothing else holds it
    bert.unfreeze("head")
    assert calls == ["freeze"] and calls[0] is nbtune.core.common.changes.Change.FREEZE


def test_dashboard_redraws_the_whole_curve_of_a_resumed_run(tiny_dirs, tmp_path):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.train(toy_rows(64), epochs=1, lr=5e-3, batch_size=8, checkpoint_dir=str(tmp_path), save_every=4, log=False,
            callbacks=[_interrupt_at(6)])
    again = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    dash = TrainingDashboard(title="resumed")
    again.train(toy_rows(64), epochs=1, lr=5e-3, batch_size=8, checkpoint_dir=str(tmp_path), resume=str(tmp_path),
                log=False, callbacks=[dash])
    assert [r["step"] for r in dash.rows if "loss" in r] == list(range(1, 9))  # 4 restored + 4 new steps


def _interrupt_at(step):
    def callback(event, control):
        if isinstance(event, StepEnded) and event.step == step:
            raise KeyboardInterrupt
    return callback

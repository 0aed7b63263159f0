"""The adapter registry: every registered method goes through one path (Session.add_adapter), and the methods that
arrived with the registry (VeRA, LoHa, LoKr) survive freezing, save/reload, export and merge like the first ones,
with no other file knowing them."""

from __future__ import annotations

import pytest
import torch

import nbtune
from nbtune import AdapterError
from nbtune.core.adapters import AdapterMethod, Field, all_methods, get_method, method_names, register_method
from nbtune.core.adapters.registry import unregister_method
from nbtune.core.model.architecture import is_adapter_param

from adapter_helpers import batch_for, changed, optimise, snapshot

NEW = {"vera": {"r": 16}, "loha": {"r": 4}, "lokr": {"r": 4}}


def bert_session(tiny_dirs):
    torch.manual_seed(0)
    return nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)


def logits(session, batch):
    session.eval_mode()
    with torch.no_grad():
        return session.model(**batch).logits


def test_registry_lists_every_method_once_lora_first():
    names = method_names()
    assert names[0] == "lora" and len(names) == len(set(names))
    assert {"lora", "prompt", "prefix", "ptuning", "ia3", "vera", "loha", "lokr"} <= set(names)
    with pytest.raises(AdapterError, match="did you mean 'vera'"):
        get_method("verra")


@pytest.mark.parametrize("method", list(NEW))
def test_new_method_survives_freeze_replay_trains_and_reloads_identically(tiny_dirs, tmp_path, method):
    s = bert_session(tiny_dirs)
    s.freeze("all")  # the freeze log is replayed after peft attaches: it must not freeze the adapter
    info = s.add_adapter(method, **NEW[method])
    assert info.method == method and info.params > 0
    adapter = [n for n in s.trainable_parameters() if is_adapter_param(n) and "modules_to_save" not in n]
    assert adapter, s.trainable_parameters()
    batch = batch_for(s)
    before = snapshot(s.model)
    loss_before, loss_after = optimise(s, batch, steps=10, lr=1e-2)
    assert loss_after < loss_before
    assert changed(s.model, before) <= set(s.trainable_parameters())
    want = logits(s, batch)

    s.save(tmp_path / "saved")
    again = nbtune.load(tmp_path / "saved")
    assert [a.method for a in again.adapters] == [method]
    assert torch.equal(logits(again, batch), want)
    assert set(again.trainable_parameters()) == set(s.trainable_parameters())

    s.merge()
    assert torch.allclose(logits(s, batch), want, atol=1e-5)


@pytest.mark.parametrize("method", list(NEW))
def test_new_method_exports_to_a_recipe_and_back(tiny_dirs, tmp_path, method):
    from nbtune.core.recipes.build import build_session
    from nbtune.core.recipes.spec import read_recipe

    s = bert_session(tiny_dirs)
    s.freeze("all")
    s.unfreeze("head")
    s.add_adapter(method, **NEW[method])
    path = s.export(tmp_path / "recipe.yaml")
    text = path.read_text()
    assert f"{method}:" in text
    rebuilt = build_session(read_recipe(path))
    assert [a.method for a in rebuilt.adapters] == [method]
    assert rebuilt.adapter_settings["default"] == s.adapter_settings["default"]
    assert set(rebuilt.trainable_parameters()) == set(s.trainable_parameters())


def test_unknown_setting_names_the_real_ones_and_changes_nothing(tiny_dirs):
    s = bert_session(tiny_dirs)
    model = s.model
    with pytest.raises(AdapterError, match="VeRA has no setting 'rank'.*Its settings: r, dropout"):
        s.add_adapter("vera", rank=8)
    assert s.model is model and s.adapters == []


def test_delete_adapter_returns_to_the_base_model(tiny_dirs):
    s = bert_session(tiny_dirs)
    batch = batch_for(s)
    base = logits(s, batch)
    s.add_adapter("loha", r=4)
    s.add_adapter("loha", name="second", r=2)
    s.delete_adapter("second")
    assert [a.name for a in s.adapters] == ["default"]
    s.delete_adapter("default")
    assert s.adapters == [] and torch.equal(logits(s, batch), base)


def test_panel_and_magic_show_new_methods(tiny_dirs, shell):
    from nbtune.ui import AdapterPanel

    s = bert_session(tiny_dirs)
    panel = AdapterPanel(s)
    assert {"vera", "loha", "lokr"} <= {value for _, value in panel.method.options}
    panel.method.value = "vera"
    panel.inputs["vera"]["r"].value = 32
    panel.attach_button.click()
    assert "attached" in panel.result.value and s.adapters[0].method == "vera"
    assert s.adapter_settings["default"]["r"] == 32

    magics = shell.magics_manager.registry["NbtuneMagics"]
    magics.register(bert_session(tiny_dirs), "reg")
    shell.run_cell("%nbtune lokr r=4 decompose_both=true")
    assert magics.session("reg").adapters[0].method == "lokr"


def test_a_method_registered_elsewhere_appears_everywhere(tiny_dirs):
    """What a contributor's new file does: register one AdapterMethod; the session, recipes, magic subcommands
    and completion, and the panel pick it up with no other edit."""
    from nbtune.core.recipes.spec import parse_recipe
    from nbtune.magics.magic import subcommands
    from nbtune.ui import AdapterPanel

    lora = get_method("lora")

    def plan(model, task, tokenizer=None, r=2):
        return lora.plan(model, task, tokenizer, r=r, targets=["query"])

    extra = AdapterMethod(name="tinylora_test", label="Tiny LoRA (test)", peft_type="TEST_ONLY", plan=plan,
                          fields=(Field("r", "int", 2, "rank", minimum=1),))
    register_method(extra)
    try:
        assert "tinylora_test" in subcommands()
        assert parse_recipe({"model": "x", "tinylora_test": {"r": 3}}).adapter == ("tinylora_test", {"r": 3})
        s = bert_session(tiny_dirs)
        assert "tinylora_test" in {v for _, v in AdapterPanel(s).method.options}
        info = s.add_adapter("tinylora_test", r=3)
        assert info.params > 0
    finally:
        unregister_method("tinylora_test")
    assert extra not in all_methods()


def test_attached_and_reloaded_sessions_keep_eval_mode(tiny_dirs, tmp_path):
    """A loaded session is in eval mode; attaching an adapter or reloading a saved one does not switch dropout on
    (calling s.model(...) directly would give noisy logits)."""
    s = bert_session(tiny_dirs)
    assert not s.model.training
    s.add_adapter("lora", r=4)
    assert not s.model.training
    s.save(tmp_path / "saved")
    again = nbtune.load(tmp_path / "saved")
    assert not again.model.training
    batch = batch_for(again)
    with torch.no_grad():
        assert torch.equal(again.model(**batch).logits, again.model(**batch).logits)

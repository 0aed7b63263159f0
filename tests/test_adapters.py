"""Adapters through peft: every method on every tiny architecture, targets, heads, freezing, save/reload, merge."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import nbtune
from nbtune import AdapterError

from adapter_helpers import batch_for, changed, optimise, snapshot

TASK = {"bert": "text-classification", "gpt2": "causal-lm", "llama": "causal-lm", "t5": "seq2seq"}
EVERY_METHOD = [("add_lora", {"r": 4}), ("add_prompt_tuning", {"n_tokens": 4}), ("add_prefix_tuning", {"n_tokens": 4}),
                ("add_ptuning", {"n_tokens": 4}), ("add_ia3", {})]
METHODS = {
    "lora": ("add_lora", {"r": 4}),
    "dora": ("add_lora", {"r": 4, "dora": True}),
    "rslora": ("add_lora", {"r": 4, "rslora": True, "targets": "all-linear"}),
    "prompt": ("add_prompt_tuning", {"n_tokens": 4}),
    "prompt-text": ("add_prompt_tuning", {"n_tokens": 4, "init_text": "a moving film"}),
    "prefix": ("add_prefix_tuning", {"n_tokens": 4}),
    "ptuning": ("add_ptuning", {"n_tokens": 4}),
    "ia3": ("add_ia3", {}),
}


def load_tiny(tiny_dirs, kind):
    return nbtune.load(tiny_dirs[kind], task=TASK[kind], **({"num_labels": 2} if kind == "bert" else {}))


def logits(session, batch):
    session.eval_mode()
    with torch.no_grad():
        out = session.model(**batch)  # labels kept: seq2seq builds its decoder inputs from them
    return out.logits


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("kind", list(TASK))
def test_method_trains_only_adapter_and_head_and_reloads_identically(tiny_dirs, tmp_path, kind, method):
    torch.manual_seed(0)
    s = load_tiny(tiny_dirs, kind)
    fn, kwargs = METHODS[method]
    info = getattr(s, fn)(**kwargs)
    summary = s.summary()
    assert info.params > 0 and summary.trainable < summary.total
    trainable = set(s.trainable_parameters())
    batch = batch_for(s)
    before_params = snapshot(s.model)
    loss_before, loss_after = optimise(s, batch, steps=10, lr=1e-2)
    assert loss_after < loss_before, (loss_before, loss_after)
    moved = changed(s.model, before_params)
    assert moved and moved <= trainable
    if kind == "bert":  # the fresh head is trained along with the adapter
        assert any("classifier.modules_to_save" in n for n in moved)

    report = s.save(tmp_path / "out")
    assert report.trainable_saved == summary.trainable
    s2 = nbtune.load(tmp_path / "out")
    assert torch.equal(logits(s2, batch), logits(s, batch))
    assert set(s2.trainable_parameters()) == trainable
    assert s2.summary().trainable == summary.trainable


def test_prompt_text_init_uses_the_words(tiny_dirs):
    s = load_tiny(tiny_dirs, "gpt2")
    s.add_prompt_tuning(n_tokens=4, init_text="a moving film")
    ids = s.tokenizer("a moving film", add_special_tokens=False)["input_ids"]
    weight = s.model.prompt_encoder["default"].embedding.weight
    expected = s.model.word_embeddings.weight[(ids * 4)[:4]]
    assert torch.equal(weight, expected)


def test_lora_targets_list_costs(tiny_dirs):
    s = load_tiny(tiny_dirs, "llama")
    targets = s.lora_targets()
    q = targets["q_proj"]
    assert q.count == 2 and q.params_per_rank == 2 * (32 + 32)
    assert targets["k_proj"].params_per_rank == 2 * (32 + 16)  # grouped-query attention: 1 kv head of 16
    assert "lm_head" not in [g.short_name for g in targets]  # the head is trained whole, not adapted
    text = repr(targets)
    assert "q_proj" in text and "params per rank" in text
    s.add_lora(r=8, targets=["q_proj", "v_proj"])
    assert s.adapters[0].params == targets.cost(["q_proj", "v_proj"], r=8)


@pytest.mark.parametrize(
    "targets, leaves",
    [
        ("qkv", {"query", "key", "value"}),
        ("all-linear", {"query", "key", "value", "dense"}),
        (["query", "value"], {"query", "value"}),
        ("encoder.layer.[1].attention.self.query", {"query"}),
        (r"re:layer\.0\..*value", {"value"}),
    ],
)
def test_targets_forms(tiny_dirs, targets, leaves):
    s = load_tiny(tiny_dirs, "bert")
    s.add_lora(r=2, targets=targets)
    wrapped = {n.split(".")[-4] for n in s.trainable_parameters() if "lora_A" in n}
    assert wrapped == leaves


def test_unknown_target_lists_candidates_and_changes_nothing(tiny_dirs):
    s = load_tiny(tiny_dirs, "gpt2")
    model = s.model
    with pytest.raises(AdapterError) as err:
        s.add_lora(targets=["q_proj"])
    assert "c_attn (Conv1D x2" in str(err.value) and "params per rank" in str(err.value)
    assert s.model is model and s.adapters == [] and not hasattr(s.model, "peft_config")


def test_freeze_api_after_and_before_attaching(tiny_dirs, tmp_path):
    s = load_tiny(tiny_dirs, "bert")
    s.freeze("all")
    s.unfreeze("encoder.layer.[1].output")  # before attaching: peft would reset this; nbtune re-applies it
    s.add_lora(r=2)
    base_out = "base_model.model.bert.encoder.layer.1.output.dense.weight"
    assert s.model.get_parameter(base_out).requires_grad
    s.unfreeze("top:1")  # after attaching: respected
    assert s.model.get_parameter("base_model.model.bert.encoder.layer.1.attention.output.dense.weight").requires_grad
    s.freeze("embeddings")
    trainable = set(s.trainable_parameters())
    assert not any("embeddings" in n for n in trainable)
    assert any("lora_A" in n for n in trainable) and any("modules_to_save" in n for n in trainable)
    assert not any("original_module" in n for n in trainable)
    expected = sum(p.numel() for p in s.model.parameters() if p.requires_grad)
    assert s.summary().trainable == expected
    batch = batch_for(s)
    optimise(s, batch, steps=2)
    assert s.save(tmp_path / "o").trainable_saved == expected
    s2 = nbtune.load(tmp_path / "o")
    assert torch.equal(logits(s2, batch), logits(s, batch))  # unfrozen base weights came back too


def test_prompt_tokens_and_tied_embeddings_counted_once(tiny_dirs):
    s = load_tiny(tiny_dirs, "gpt2")
    total_before = s.summary().total
    s.add_prompt_tuning(n_tokens=5)
    summary = s.summary()
    assert summary.trainable == 5 * 32
    assert summary.total == total_before + 5 * 32  # word_embeddings referenced twice, lm_head tied: once


def test_named_adapters_switch_and_disable(tiny_dirs):
    torch.manual_seed(0)
    s = load_tiny(tiny_dirs, "bert")
    batch = batch_for(s)
    base = logits(s, batch)
    s.add_lora(r=2, name="a")
    optimise(s, batch, steps=3)
    s.add_lora(r=2, targets=["value"], name="b")
    assert [a.name for a in s.adapters] == ["a", "b"] and s.adapters[1].active
    optimise(s, batch, steps=3)
    out_b = logits(s, batch)
    s.set_adapter("a")
    out_a = logits(s, batch)
    assert not torch.allclose(out_a, out_b)
    s.disable_adapters()
    assert torch.equal(logits(s, batch), base)
    s.enable_adapters()
    assert torch.equal(logits(s, batch), out_a)
    with s.adapters_disabled():
        assert torch.equal(logits(s, batch), base)
    with pytest.raises(AdapterError, match="already exists"):
        s.add_lora(name="a")
    with pytest.raises(AdapterError, match="cannot hold a prompt"):
        s.add_prompt_tuning(name="c")
    with pytest.raises(AdapterError, match="No adapter named 'zz'"):
        s.set_adapter("zz")
    assert [a.name for a in s.adapters] == ["a", "b"]


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_merge_matches_and_saves_plain_transformers(tiny_dirs, tmp_path, kind):
    torch.manual_seed(0)
    s = load_tiny(tiny_dirs, kind)
    s.add_lora(r=4, targets="all-linear")
    batch = batch_for(s)
    optimise(s, batch, steps=4)
    before = logits(s, batch)
    s.merge()
    assert not hasattr(s.model, "peft_config")
    after = logits(s, batch)
    assert torch.allclose(before, after, atol=1e-5)
    s.save(tmp_path / "merged")
    import transformers

    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    cls = transformers.AutoModelForSequenceClassification if kind == "bert" else transformers.AutoModelForCausalLM
    plain = cls.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(plain(**batch).logits, after, atol=1e-5)


def test_adapter_errors_change_nothing(tiny_dirs, cnn):
    s = load_tiny(tiny_dirs, "bert")
    model, flags = s.model, {n: p.requires_grad for n, p in s.model.named_parameters()}
    for call, pattern in [
        (lambda: s.add_lora(r=0), "positive integer"),
        (lambda: s.add_lora(r=-2), "positive integer"),
        (lambda: s.add_prompt_tuning(n_tokens=0), "positive integer"),
        (lambda: s.add_prefix_tuning(n_tokens=-1), "positive integer"),
        (lambda: s.merge(), "no adapter is attached"),
    ]:
        with pytest.raises(AdapterError, match=pattern):
            call()
    assert s.model is model and flags == {n: p.requires_grad for n, p in s.model.named_parameters()}
    c = nbtune.load(cnn)
    with pytest.raises(AdapterError, match="no input embedding layer|needs a task"):
        c.add_prompt_tuning()
    s.add_prompt_tuning(n_tokens=3)
    with pytest.raises(AdapterError, match="nothing to merge"):
        s.merge()


def test_prefix_tuning_on_unsupported_architecture_rolls_back(tmp_path, tokenizer):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    DistilBertForSequenceClassification(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2,
                                                         hidden_dim=64)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    s = nbtune.load(tmp_path, num_labels=2)
    model, flags = s.model, {n: p.requires_grad for n, p in s.model.named_parameters()}
    with pytest.raises(AdapterError, match="DistilBertForSequenceClassification.*LoRA and IA3"):
        s.add_prefix_tuning()
    assert s.model is model and {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert type(model.classifier) is nn.Linear  # peft's head wrapper was removed again
    s.add_lora(r=2, targets="all-linear")  # the session still works


def test_lora_on_hand_written_module(cnn, tmp_path):
    torch.manual_seed(0)
    pretrained = copy.deepcopy(cnn.state_dict())  # what a user would load into a rebuilt module
    s = nbtune.load(cnn)
    targets = s.lora_targets()
    assert {g.type for g in targets} == {"Conv2d"} and [g.short_name for g in targets] == ["0", "3"]
    s.add_lora(r=2, targets=["features.0", "features.3"])
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))

    def loss_now():
        s.eval_mode()
        with torch.no_grad():
            return nn.functional.cross_entropy(s.model(x), y).item()

    before_params, start = snapshot(s.model), loss_now()
    opt = torch.optim.AdamW([p for p in s.model.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(10):
        s.train_mode()
        nn.functional.cross_entropy(s.model(x), y).backward()
        opt.step()
        opt.zero_grad()
    assert loss_now() < start
    moved = changed(s.model, before_params)
    assert moved and all("lora_" in n or "fc.modules_to_save" in n for n in moved)
    s.save(tmp_path / "cnn")
    with pytest.raises(nbtune.ModelLoadError, match="nn.Module"):
        nbtune.load(tmp_path / "cnn")
    torch.manual_seed(1)
    from tiny_models import TinyCNN

    fresh = TinyCNN()
    fresh.load_state_dict(pretrained)
    s2 = nbtune.load(fresh, adapter=tmp_path / "cnn")
    s.eval_mode(), s2.eval_mode()
    with torch.no_grad():
        assert torch.equal(s2.model(x), s.model(x))


def test_lora_linear_targets_on_hand_written_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    s = nbtune.load(model)
    assert [g.short_name for g in s.lora_targets()] == ["0", "2"]  # "4" is the head
    info = s.add_lora(r=2, targets="all-linear")
    assert info.params == 2 * (8 + 16) + 2 * (16 + 16) + (16 * 2 + 2)  # LoRA + trained head copy


@pytest.mark.slow
@pytest.mark.parametrize("fn, kwargs", EVERY_METHOD)
def test_real_minilm_methods(minilm_dir, fn, kwargs):
    torch.manual_seed(0)
    s = nbtune.load(minilm_dir, task="text-classification", num_labels=2)
    getattr(s, fn)(**kwargs)
    batch = batch_for(s)
    trainable = set(s.trainable_parameters())
    snap = snapshot(s.model)
    before, after = optimise(s, batch, steps=8, lr=3e-3)
    assert after < before
    assert changed(s.model, snap) <= trainable


@pytest.fixture(scope="module")
def smollm(smollm_gguf):
    return nbtune.load(smollm_gguf)


@pytest.mark.slow
@pytest.mark.parametrize("fn, kwargs", EVERY_METHOD)
def test_smollm2_methods(smollm, fn, kwargs):
    torch.manual_seed(0)
    s = nbtune.Session(copy.deepcopy(smollm.model), smollm.tokenizer, task="causal-lm", source=smollm.source)
    getattr(s, fn)(**kwargs)
    batch = batch_for(s)
    batch = {k: v[:4, :12] for k, v in batch.items()}
    trainable = set(s.trainable_parameters())
    snap = snapshot(s.model)
    before, after = optimise(s, batch, steps=3, lr=1e-3)
    assert after < before
    assert changed(s.model, snap) <= trainable


@pytest.mark.slow
def test_smollm2_lora_save_reload(smollm, tmp_path):
    s = nbtune.Session(copy.deepcopy(smollm.model), smollm.tokenizer, task="causal-lm", source=smollm.source)
    s.add_lora(r=4, targets="qkv")
    batch = {k: v[:2, :8] for k, v in batch_for(s).items()}
    optimise(s, batch, steps=1)
    s.save(tmp_path / "smol")
    s2 = nbtune.load(tmp_path / "smol")
    assert torch.equal(logits(s2, batch), logits(s, batch))


# -- saving never destroys ------------------------------------------------------------------------------


def _logits(s, text="a good film"):
    enc = s.tokenizer([text], return_tensors="pt")
    s.eval_mode()
    with torch.no_grad():
        return s.model(**enc).logits


def test_saving_over_a_foreign_folder_needs_overwrite(tiny_dirs, tmp_path):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    other = tmp_path / "project"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(nbtune.SaveError, match="not an nbtune save \\(notes.txt.*overwrite=True"):
        s.save(other)
    assert (other / "notes.txt").read_text() == "mine"
    s.save(other, overwrite=True)
    assert not (other / "notes.txt").exists() and torch.equal(_logits(nbtune.load(other)), _logits(s))


def test_a_save_cut_short_leaves_the_previous_one(tiny_dirs, tmp_path, monkeypatch):
    import os

    from nbtune.core.session import persist

    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.add_lora(r=2)
    folder = tmp_path / "saved"
    s.save(folder)
    first = _logits(s)
    with torch.no_grad():
        for p in s.model.parameters():
            if p.requires_grad:
                p.add_(0.5)
    assert not torch.equal(_logits(s), first)

    # a crash while the files are written: the previous save stays where it is
    def broken(*args, **kwargs):
        raise OSError("disk full (injected)")

    with monkeypatch.context() as patch:
        patch.setattr(persist, "_metadata", broken)
        with pytest.raises(OSError):
            s.save(folder)
    assert torch.equal(_logits(nbtune.load(folder)), first)

    # a kill between moving the previous save aside and moving the new one in: the next load puts it back
    calls = {"n": 0}
    real_replace = os.replace

    def killed(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the process died here
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(persist.os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            s.save(folder)
    assert not folder.exists()
    assert torch.equal(_logits(nbtune.load(folder)), first)


def test_each_tensor_is_stored_once(tiny_dirs, tmp_path):
    from safetensors.torch import load_file

    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.add_lora(r=4)
    s.unfreeze("bert.embeddings.LayerNorm")  # a base module peft does not store: it goes to nbtune's own file
    report = s.save(tmp_path / "once")
    stored = sum(t.numel() for f in (tmp_path / "once").rglob("*.safetensors") for t in load_file(str(f)).values())
    assert stored == report.trainable_saved == s.summary().trainable
    s2 = nbtune.load(tmp_path / "once")
    assert torch.equal(_logits(s2), _logits(s))
    assert set(s2.trainable_parameters()) == set(s.trainable_parameters())

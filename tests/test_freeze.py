"""Selectors, presets per architecture, round trips, errors that change nothing, frozen BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nbtune
from nbtune import SelectorError

TASK = {"bert": "text-classification", "gpt2": "causal-lm", "llama": "causal-lm", "t5": "seq2seq"}


@pytest.fixture(scope="module")
def sessions(tiny_dirs):
    return {k: nbtune.load(tiny_dirs[k], task=TASK[k]) for k in TASK}


def flags(model: nn.Module) -> dict[str, bool]:
    return {n: p.requires_grad for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "kind, preset, expected",
    [
        ("bert", "head", ["bert.pooler", "classifier"]),  # the pooler only feeds the classifier
        ("gpt2", "head", ["lm_head"]),
        ("llama", "head", ["lm_head"]),
        ("t5", "head", ["lm_head"]),
        ("bert", "embeddings", ["bert.embeddings"]),
        ("gpt2", "embeddings", ["transformer.wte", "transformer.wpe"]),
        ("llama", "embeddings", ["model.embed_tokens"]),
        ("bert", "top:1", ["bert.encoder.layer.1", "bert.pooler", "classifier"]),
        ("gpt2", "top:1", ["transformer.h.1", "transformer.ln_f", "lm_head"]),
        ("llama", "top:1", ["model.layers.1", "model.norm", "lm_head"]),
        ("t5", "top:1", ["encoder.block.1", "encoder.final_layer_norm", "decoder.block.1",
                         "decoder.final_layer_norm", "lm_head"]),
    ],
)
def test_presets_select_expected_modules(sessions, kind, preset, expected):
    assert sessions[kind].select(preset).matches[preset] == expected


@pytest.mark.parametrize(
    "kind, leaves",
    [
        ("bert", {"query", "key", "value"}),
        ("gpt2", {"c_attn"}),
        ("llama", {"q_proj", "k_proj", "v_proj"}),
        ("t5", {"q", "k", "v"}),
    ],
)
def test_qkv_preset_per_architecture(sessions, kind, leaves):
    matched = sessions[kind].select("qkv").matches["qkv"]
    assert {m.split(".")[-1] for m in matched} == leaves
    n_attention = {"bert": 2, "gpt2": 2, "llama": 2, "t5": 6}[kind]  # T5: 2 enc self + 2 dec self + 2 cross
    assert len(matched) == n_attention * len(leaves)


def test_bitfit_selects_only_biases(sessions):
    names = sessions["bert"].select("bitfit").params
    assert names and all(n.endswith(".bias") for n in names)
    assert len(names) == sum(1 for n, _ in sessions["bert"].model.named_parameters() if n.endswith("bias"))


@pytest.mark.parametrize(
    "selector, expected_params",
    [
        ("classifier", {"classifier.weight", "classifier.bias"}),
        ("bert.encoder.layer.0.attention.self.query.weight", {"bert.encoder.layer.0.attention.self.query.weight"}),
        ("encoder.layer.*.attention.self.query", {f"bert.encoder.layer.{i}.attention.self.query.{w}"
                                                  for i in (0, 1) for w in ("weight", "bias")}),
        (r"re:layer\.1\.output\.dense\.weight$", {"bert.encoder.layer.1.output.dense.weight"}),
        ("encoder.layer.[1].output.LayerNorm", {"bert.encoder.layer.1.output.LayerNorm.weight",
                                                "bert.encoder.layer.1.output.LayerNorm.bias"}),
    ],
)
def test_selector_forms(sessions, selector, expected_params):
    assert set(sessions["bert"].select(selector).params) == expected_params


def test_ranges(sessions):
    s = sessions["llama"]
    assert s.select("layers.[0-1]").matches["layers.[0-1]"] == ["model.layers.0", "model.layers.1"]
    assert s.select("layers.[-1:]").matches["layers.[-1:]"] == ["model.layers.1"]
    assert s.select("layers.[0,1].mlp").matches["layers.[0,1].mlp"] == ["model.layers.0.mlp", "model.layers.1.mlp"]
    with pytest.raises(SelectorError, match="has 2 blocks"):
        s.select("layers.[0-5]")


def test_type_selector(sessions):
    s = sessions["bert"]
    matched = s.select("type:LayerNorm").matches["type:LayerNorm"]
    assert len(matched) == 1 + 2 * 2  # embeddings + two per layer
    assert s.select("type:*Norm").params == s.select("type:LayerNorm").params


def test_freeze_unfreeze_round_trip(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification")
    start = flags(s.model)
    report = s.freeze("embeddings", "encoder.layer.[0]")
    assert report.changed and all(not s.model.get_parameter(n).requires_grad for n in report.changed)
    assert report.trainable_after == report.trainable_before - report.changed_numel
    s.unfreeze("embeddings", "encoder.layer.[0]")
    assert flags(s.model) == start
    s.freeze("all")
    assert not any(flags(s.model).values())
    r = s.unfreeze("head")
    assert set(s.trainable_parameters()) == {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                                             "bert.pooler.dense.bias"}
    assert r.trainable_after == 32 * 2 + 2 + 32 * 32 + 32
    assert s.freeze_log == [("freeze", ("embeddings", "encoder.layer.[0]")), ("unfreeze", ("embeddings", "encoder.layer.[0]")),
                            ("freeze", ("all",)), ("unfreeze", ("head",))]


def test_unmatched_selector_lists_close_names_and_changes_nothing(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification")
    s.freeze("embeddings")
    before = flags(s.model)
    with pytest.raises(SelectorError) as err:
        s.unfreeze("head", "encoder.layer.*.atention")  # the first selector is fine, the second is not
    msg = str(err.value)
    assert "encoder.layer.*.atention" in msg and "bert.encoder.layer.*.attention" in msg
    assert flags(s.model) == before
    assert s.freeze_log == [("freeze", ("embeddings",))]


def test_bad_selectors(sessions):
    s = sessions["bert"]
    for bad, pattern in [("re:([", "regular expression"), ("top:0", "positive"), ("", "empty"),
                         ("layer.[a-b]", "matches nothing"), ("layer.[5-9]", "outside")]:
        with pytest.raises(SelectorError, match=pattern):
            s.select(bad)


def test_tied_head_is_reported(tiny_dirs):
    s = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    s.freeze("all")
    report = s.unfreeze("head")
    assert any("tied" in n for n in report.notes)
    assert s.model.transformer.wte.weight.requires_grad  # same tensor as lm_head.weight


def test_cnn_presets_and_types(cnn):
    s = nbtune.load(cnn)
    assert s.select("head").matches["head"] == ["fc"]
    assert len(s.select("type:BatchNorm2d").matches["type:BatchNorm2d"]) == 2
    with pytest.raises(SelectorError, match="repeated blocks"):
        s.select("top:1")
    with pytest.raises(SelectorError, match="no attention"):
        s.select("qkv")
    s.freeze("all")
    s.unfreeze("fc", "bitfit")
    assert set(s.trainable_parameters()) == {"fc.weight", "fc.bias", "features.0.bias", "features.1.bias",
                                             "features.3.bias", "features.4.bias"}


def _step(s, x, y):
    model = s.train_mode()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def test_frozen_batchnorm_statistics_do_not_move(cnn):
    s = nbtune.load(cnn)
    s.freeze("type:BatchNorm2d")
    bn_frozen, before = cnn.features[1], cnn.features[1].running_mean.clone()
    x, y = torch.randn(16, 1, 8, 8) * 3 + 1, torch.randint(0, 3, (16,))
    weight_before = cnn.features[1].weight.clone()
    _step(s, x, y)
    assert torch.equal(bn_frozen.running_mean, before)
    assert torch.equal(bn_frozen.weight, weight_before)
    assert not bn_frozen.training and cnn.features[0].training

    # control: with the BatchNorm unfrozen the same step does move its statistics
    s.unfreeze("type:BatchNorm2d")
    _step(s, x, y)
    assert not torch.equal(bn_frozen.running_mean, before)


def test_real_minilm_presets(minilm_dir):
    s = nbtune.load(minilm_dir, task="text-classification", num_labels=2)
    assert len(s.select("qkv").matches["qkv"]) == 6 * 3
    assert s.select("top:2").matches["top:2"] == ["bert.encoder.layer.4", "bert.encoder.layer.5", "bert.pooler",
                                                 "classifier"]
    s.freeze("all")
    assert s.unfreeze("head").trainable_after == 384 * 2 + 2 + 384 * 384 + 384  # classifier + pooler

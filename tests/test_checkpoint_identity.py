"""Checkpoints know what they belong to: resuming onto another model, task or adapter set is one clear error,
raised before the session changes."""

from __future__ import annotations

import pytest
import torch
import transformers

import nbtune
from nbtune.core.training.loop import TrainingError

from training_helpers import toy_rows

SETTINGS = dict(epochs=1, batch_size=8, lr=1e-3, seed=1, log=False, max_length=16)


def _bert(folder, tokenizer, **changes):
    from tiny_models import tiny_config

    config = tiny_config("bert", len(tokenizer))
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return nbtune.load(folder, task="text-classification", num_labels=2)


def _state(s):
    return ({n: p.detach().clone() for n, p in s.model.named_parameters()},
            {n for n, p in s.model.named_parameters() if p.requires_grad}, list(s.history.rows), s.training.global_step)


def _unchanged(s, before):
    weights, trainable, rows, step = before
    assert all(torch.equal(p, weights[n]) for n, p in s.model.named_parameters())
    assert {n for n, p in s.model.named_parameters() if p.requires_grad} == trainable
    assert s.history.rows == rows and s.training.global_step == step


@pytest.fixture
def checkpoint(tmp_path, tokenizer):
    s = _bert(tmp_path / "small", tokenizer)
    s.freeze("all")
    s.unfreeze("head")
    s.train(toy_rows(32), checkpoint_dir=str(tmp_path / "ck"), save_every=2, **SETTINGS)
    return tmp_path / "ck"


@pytest.mark.parametrize("changes, expected", [
    (dict(hidden_size=64, intermediate_size=128), "parameter shapes differ: .*32.* there, .*64.* here"),
    (dict(num_hidden_layers=4), "different layers .*only in this session's model: bert.encoder.layer.2"),
])
def test_resuming_onto_another_architecture_names_the_difference(checkpoint, tmp_path, tokenizer, changes, expected):
    other = _bert(tmp_path / "other", tokenizer, **changes)
    other.train(toy_rows(16), **SETTINGS)  # some history and an optimizer of its own
    before = _state(other)
    with pytest.raises(TrainingError, match=expected) as info:
        other.train(toy_rows(32), resume=checkpoint, **SETTINGS)
    assert "Nothing was changed" in str(info.value)
    _unchanged(other, before)


def test_resuming_without_the_adapters_of_the_run_is_refused(tmp_path, tokenizer):
    s = _bert(tmp_path / "m", tokenizer)
    s.add_lora(r=4)
    s.train(toy_rows(32), checkpoint_dir=str(tmp_path / "ck"), save_every=2, **SETTINGS)
    plain = nbtune.load(tmp_path / "m", task="text-classification", num_labels=2)
    with pytest.raises(TrainingError, match="adapters \\['default'\\] and this session has none"):
        plain.train(toy_rows(32), resume=tmp_path / "ck", **SETTINGS)
    other = nbtune.load(tmp_path / "m", task="text-classification", num_labels=2)
    other.add_lora(r=8)
    with pytest.raises(TrainingError, match="adapter 'default' is set up differently \\(.*r=4 there, 8 here"):
        other.train(toy_rows(32), resume=tmp_path / "ck", **SETTINGS)


def test_in_memory_resume_refuses_a_changed_trainable_set(tmp_path, tokenizer):
    s = _bert(tmp_path / "m", tokenizer)

    def interrupt(event, control):
        if type(event).__name__ == "StepEnded" and event.step == 2:
            raise KeyboardInterrupt

    s.train(toy_rows(32), callbacks=[interrupt], **SETTINGS)
    s.freeze("bert.embeddings")
    with pytest.raises(TrainingError, match="trainable set changed .*now frozen"):
        s.train(toy_rows(32), resume=True, **SETTINGS)
    s.unfreeze("bert.embeddings")
    assert s.train(toy_rows(32), resume=True, **SETTINGS).outcome.finished

"""Modalities and lazily encoded examples: shared code asks the task's modality, per-item encodings are seeded by
(seed, epoch, example) and cached when deterministic, and the task is found from transformers' own auto classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import nbtune
from nbtune.core.data.batching import make_loader
from nbtune.core.data.features import Features
from nbtune.core.data.modality import Modality, get_modality, modality_names
from nbtune.core.tasks import get_task, label_config, task_for_architecture


def _noisy(row, train, rng):
    calls.append(row["value"])
    noise = float(rng.normal()) if train else 0.0
    return {"x": torch.tensor([row["value"] + noise])}


calls: list = []


def _lazy(n=8, cache=False, seed=5) -> Features:
    return Features([{"value": float(i)} for i in range(n)], [1] * n, encode=_noisy, seed=seed, cache=cache)


def test_random_encodings_are_seeded_by_seed_epoch_and_example_not_by_order():
    a, b = _lazy(), _lazy()
    forward = [float(a[i]["x"]) for i in range(8)]
    backward = [float(b[i]["x"]) for i in reversed(range(8))][::-1]
    assert forward == backward  # the order items are asked in changes nothing (a resumed run skips batches)
    assert forward != [float(i) for i in range(8)]  # training draws noise
    a.set_epoch(1)
    assert [float(a[i]["x"]) for i in range(8)] != forward  # another epoch, other transforms
    assert [float(_lazy(seed=6)[i]["x"]) for i in range(8)] != forward
    evaluation = a.for_evaluation()
    assert [float(evaluation[i]["x"]) for i in range(8)] == [float(i) for i in range(8)]  # no random transform


def test_deterministic_encodings_are_made_once():
    calls.clear()
    f = Features([{"value": 1.0}, {"value": 2.0}], [1, 1], encode=lambda row, train, rng: calls.append(1) or
                 {"x": torch.tensor([row["value"]])}, cache=True)
    for _ in range(3):
        f[0], f[1]
    assert len(calls) == 2
    assert f.for_evaluation()[0] is f[0]  # the cache is shared with evaluation's view


def test_the_loader_tells_lazy_examples_the_epoch():
    f = _lazy(16)
    loader = make_loader(f, torch.utils.data.default_collate, 4, seed=1, shuffle=True, group_by_length=False)
    loader.batch_sampler.set_epoch(3)
    assert f.epoch == 3
    first = torch.cat([b["x"] for b in loader]).sort().values
    loader.batch_sampler.set_epoch(3)
    again = torch.cat([b["x"] for b in loader]).sort().values
    assert torch.equal(first, again)
    evaluation = make_loader(f, torch.utils.data.default_collate, 4, seed=1, shuffle=False, group_by_length=False)
    assert torch.equal(torch.cat([b["x"] for b in evaluation]).reshape(-1), torch.arange(16.0))


def test_modalities_are_registered_and_named_by_tasks():
    assert {"text", "tensor"} <= set(modality_names())
    assert get_task("text-classification").inputs().name == "text"
    with pytest.raises(nbtune.DataError, match="Unknown modality 'smell'.*register_modality"):
        get_modality("smell")


def test_text_modality_sizes_batches_probes_and_single_inputs(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    text = s.modality
    assert text.name == "text" and text.is_single("a sentence") and text.is_single(("a", "b"))
    assert not text.is_single(["a", "b"])
    rows = [text.encode(s, "a short one", True, None), text.encode(s, "a much longer sentence than that", True, None)]
    batch = text.collate(s, rows)
    assert text.batch_size(batch) == 2 and text.tokens(batch) == sum(text.size(r) for r in rows)
    probe = text.probe_batch(s.model)
    s.model(**probe)  # the probe is a batch the model runs on
    with pytest.raises(nbtune.DataError, match="Example 3 of column 'text' has no text"):
        text.read("  ", "example 3 of column 'text'")


def test_a_bare_modality_changes_nothing_it_does_not_know():
    m = Modality()
    assert m.probe_batch(torch.nn.Linear(2, 2)) is None and m.size({}) == 1 and m.positions(None, 7) == 7
    assert m.batch_size({"a": torch.zeros(3, 2)}) == 3


def test_the_task_comes_from_the_auto_class_not_the_class_name_suffix():
    assert task_for_architecture(transformers.T5Config(), "T5ForConditionalGeneration") == "seq2seq"
    assert task_for_architecture(transformers.GPT2Config(), "GPT2LMHeadModel") == "causal-lm"  # not preference
    # a speech model shares the suffix with text seq2seq; transformers maps it elsewhere, so no text task claims it
    assert task_for_architecture(transformers.WhisperConfig(), "WhisperForConditionalGeneration") is None
    assert task_for_architecture(transformers.BertConfig(), "RemoteBertForTokenClassification") == "token-classification"


def test_problem_type_is_the_tasks_to_give():
    assert label_config("text-classification", 1)["problem_type"] == "regression"
    assert label_config("text-classification", 3)["problem_type"] == "single_label_classification"
    assert "problem_type" not in label_config("token-classification", 3)


def test_memory_estimate_finds_a_vocabulary_head_by_structure(tiny_dirs):
    from nbtune.core.model.memory import _is_lm

    lm = nbtune.load(tiny_dirs["gpt2"], task="causal-lm")
    classifier = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    assert _is_lm(lm.model) and not _is_lm(classifier.model) and not _is_lm(torch.nn.Linear(2, 2))


def test_lazy_noise_matches_numpy_seed_sequence():
    f = _lazy(2, seed=9)
    f.set_epoch(4)
    expected = 1.0 + float(np.random.default_rng([9, 4, 1]).normal())
    assert float(f[1]["x"]) == pytest.approx(expected)

"""Batches that waste little: length grouping at least as tight as the Trainer's, token budgets, evaluation order."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pandas as pd
import pytest
import torch

import nbtune
from nbtune.core.common.errors import TrainingError
from nbtune.core.data.batching import LengthGroupedBatches, budget_batches
from nbtune.core.training.evaluation import in_input_order

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"


def sst2_lengths(n: int = 1000) -> list[int]:
    """Token counts of the first SST-2 sentences (whitespace words + 2 specials: the shape that matters)."""
    with open(SST2, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [len(r["sentence"].split()) + 2 for r in rows]


def padding_share(batches, lengths) -> float:
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def test_grouping_is_as_tight_as_the_trainers_and_shuffles_the_whole_epoch():
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = sst2_lengths()
    ours = LengthGroupedBatches(lengths, 32, seed=42)
    trainer_order = list(LengthGroupedSampler(32, lengths=lengths, generator=torch.Generator().manual_seed(42)))
    trainer = [trainer_order[i:i + 32] for i in range(0, len(trainer_order), 32)]
    shares = []
    for seed in range(5):  # same mega-batch sizes, other random draws: as tight on average
        ours_s = LengthGroupedBatches(lengths, 32, seed=seed)
        shares.append(padding_share(ours_s.batches(), lengths))
    assert sum(shares) / 5 <= padding_share(trainer, lengths) * 1.1
    assert padding_share(ours.batches(), lengths) < padding_share([list(range(i, min(i + 32, 1000))) for i in range(0, 1000, 32)],
                                                                  lengths) / 2  # far below random batches
    epochs = []
    for epoch in range(3):
        ours.set_epoch(epoch)
        batches = ours.batches()
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every example once
        assert len(batches) == len(ours)
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch first: fails at once if too big
        assert batches == ours.batches()  # fixed by (seed, epoch): resuming relies on it
        epochs.append(batches)
    assert epochs[0] != epochs[1] != epochs[2]
    # the steps do not walk down a length ramp: batch lengths after the first are not sorted
    tops = [max(lengths[i] for i in b) for b in epochs[0][1:]]
    assert tops != sorted(tops) and tops != sorted(tops, reverse=True)


def test_ungrouped_batches_are_slices_of_a_permutation_fixed_per_epoch():
    sampler = LengthGroupedBatches(list(range(1, 71)), 16, seed=3, group_by_length=False)
    first = sampler.batches()
    assert [len(b) for b in first] == [16, 16, 16, 16, 6] and sorted(sum(first, [])) == list(range(70))
    assert first == LengthGroupedBatches(list(range(1, 71)), 16, seed=3, group_by_length=False).batches()
    sampler.set_epoch(1)
    assert sampler.batches() != first
    sampler.set_epoch(0)
    sampler.skip = 2  # resuming after two batches of the epoch
    assert list(sampler) == first[2:] and list(sampler) == first  # the skip applies once


def test_token_budget_batches_fit_the_budget_and_their_count_is_fixed():
    lengths = sst2_lengths()
    sampler = LengthGroupedBatches(lengths, 32, seed=0, max_tokens=512)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(len(b) * max(lengths[i] for i in b) <= 512 for b in batches)
    sizes = [len(b) for b in batches]
    assert max(sizes) > 3 * min(sizes)  # short sentences travel in larger batches
    assert budget_batches([0, 1], [900, 10], 512) == [[0], [1]]  # longer than the budget: a batch of its own


def test_a_run_with_a_token_budget_learns_and_resumes_only_with_the_same_budget(tiny_dirs):
    rng = random.Random(0)
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = [{"sentence": " ".join(rng.choice(words[:3] if y else words[3:]) for _ in range(rng.randint(2, 30))),
             "label": y} for y in [0, 1] * 48]
    torch.manual_seed(0)
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    shapes = []
    handle = s.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)) if module.training else None,
        with_kwargs=True)
    result = s.train(pd.DataFrame(rows), epochs=4, lr=5e-3, max_tokens_per_batch=256, log=False)
    handle.remove()
    lengths = [len(s.tokenizer(r["sentence"])["input_ids"]) for r in rows]
    assert result.steps == 4 * len(LengthGroupedBatches(lengths, 16, 0, max_tokens=256)) == len(shapes)
    assert all(n * width <= 256 for n, width in shapes) and len({n for n, _ in shapes}) > 2
    losses = s.history.losses()
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    stop_after_one = [lambda event, control: control.stop() if type(event).__name__ == "StepEnded" else None]
    s.train(pd.DataFrame(rows), epochs=4, lr=5e-3, max_tokens_per_batch=256, log=False, callbacks=stop_after_one)
    with pytest.raises(TrainingError, match="max_tokens_per_batch=256 there, 128 now"):
        s.train(pd.DataFrame(rows), epochs=4, lr=5e-3, max_tokens_per_batch=128, log=False, resume=True)


def test_per_example_results_come_back_in_input_order():
    store = {"start": ["c", "a", "b"], "logits": [torch.ones(2, 3)], "tokens": [4, 5, 6]}
    in_input_order(store, [2, 0, 1])  # collected for examples 2, 0, 1
    assert store["start"] == ["a", "b", "c"]
    assert store["tokens"] == [5, 6, 4]  # one entry per example: reordered too (sums do not care)
    assert store["logits"][0].shape == (2, 3)  # per-batch values stay as they are


def test_sorted_evaluation_and_prediction_match_one_by_one(tiny_dirs):
    torch.manual_seed(0)
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    texts = ["a b c d e f g h i j k", "a", "b c", "d e f g", "h i j k l m n o p q r s t u v", "w x"]
    labels = [0, 1, 1, 0, 1, 0]
    alone = [s.predict(t)[0] for t in texts]
    together = s.predict(texts, batch_size=4)
    assert [r["label"] for r in together] == [r["label"] for r in alone]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(alone, together))
    metrics = s.evaluate(pd.DataFrame({"sentence": texts, "label": labels}), batch_size=4)
    names = s.model.config.id2label
    expected = sum(names[y] == r["label"] for y, r in zip(labels, alone)) / len(labels)
    assert metrics["accuracy"] == pytest.approx(expected)

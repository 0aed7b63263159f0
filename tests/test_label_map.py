"""One label map per run, decided before anything trains: a class only the evaluation data has (a typo, a third
class, an id the training data never uses, a tag, an image folder) is one error naming it, the known classes and
the nearest known one, and the session is left as it was."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from image_helpers import save_tiny_vision, write_image_folder

import nbtune
from nbtune.core.data.features import DataError

FAST = dict(epochs=1, batch_size=8, log=False, save_run=False, max_length=16)
TRAIN = pd.DataFrame({"text": ["good film", "bad film", "great", "awful"] * 4, "label": ["positive", "negative"] * 8})


def _dev(labels):
    return pd.DataFrame({"text": ["good", "bad", "ok", "fine"][:len(labels)], "label": labels})


def _state(s):
    return ({n: p.detach().clone() for n, p in s.model.named_parameters()}, dict(s.model.config.id2label),
            len(s.history.rows), s.training.global_step)


def _unchanged(s, before):
    weights, names, rows, step = before
    assert all(torch.equal(p, weights[n]) for n, p in s.model.named_parameters())
    assert dict(s.model.config.id2label) == names and len(s.history.rows) == rows and s.training.global_step == step


@pytest.mark.parametrize("load", [dict(num_labels=2), {}, dict(num_labels=3)])
@pytest.mark.parametrize("dev, message", [
    (["positive", "negatve"], r"a class not among the training data's classes: 'negatve' \(did you mean 'negative'\?\)"
                              r"\. The known ones: 'negative', 'positive'"),
    (["positive", "negative", "neutral"], r"a class not among the training data's classes: 'neutral'\. "),
])
def test_a_class_only_the_evaluation_data_has_is_refused_before_training(tiny_dirs, load, dev, message):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", **load)
    before = _state(s)
    with pytest.raises(DataError, match=message) as caught:
        s.train(TRAIN, eval=_dev(dev), **FAST)
    assert "outputs" not in str(caught.value)  # the cause, not the head's size
    _unchanged(s, before)


def test_integer_ids_only_the_evaluation_data_has_are_refused(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=3)
    train = TRAIN.assign(label=[0, 1] * 8)
    with pytest.raises(DataError, match=r"a class not among the training data's classes: 2\. The known ones: 0, 1"):
        s.train(train, eval=_dev([0, 2]), **FAST)
    assert s.train(train, eval=_dev([1, 0]), **FAST).metrics["accuracy"] >= 0  # classes the training has: scored


def test_regression_scores_are_not_classes(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=1)
    run = s.train(TRAIN.assign(label=[0.1, 0.9] * 8), eval=_dev([0.4, 0.75]), **FAST)
    assert "mse" in run.metrics


def test_evaluate_after_training_refuses_an_unknown_class_with_the_nearest_one(tiny_dirs):
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    s.train(TRAIN, **FAST)
    before = _state(s)
    with pytest.raises(DataError, match=r"not among the model's labels: 'postive' \(did you mean 'positive'\?\)"):
        s.evaluate(_dev(["postive", "negative"]))
    _unchanged(s, before)


def test_a_tag_only_the_evaluation_data_has_is_refused(tiny_dirs):
    train = [{"tokens": ["alice", "met", "bob"], "tags": ["B-person", "O", "B-person"]},
             {"tokens": ["in", "paris"], "tags": ["O", "B-location"]}] * 4
    dev = [{"tokens": ["bob", "in", "rome"], "tags": ["B-person", "O", "B-locaton"]}]
    s = nbtune.load(tiny_dirs["bert"], task="token-classification")
    before = _state(s)
    with pytest.raises(DataError, match=r"'B-locaton' \(did you mean 'B-location'\?\)"):
        s.train(train, eval=dev, **FAST)
    _unchanged(s, before)


def test_an_image_class_only_the_validation_folder_has_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "digits", {"train": (0, 60)}, classes=(0, 1))
    write_image_folder(root, {"val": (500, 30)}, classes=(0, 1, 2))
    s = nbtune.load(save_tiny_vision("resnet", tmp_path / "resnet", num_labels=2))
    before = _state(s)
    with pytest.raises(DataError, match=r"a class not among the training data's classes: '2'"):
        s.train(str(root), **FAST)
    _unchanged(s, before)

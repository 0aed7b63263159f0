"""What needs torchvision: training augmentation that is random per epoch, seeded, and exact across a resume.
These run in the second test environment (``scripts/_vision_env.sh``); in the main one they skip."""

from __future__ import annotations

import pytest

pytest.importorskip("torchvision", reason="torchvision is not in this environment; scripts/test.sh runs these "
                                          "tests in .venv-vision")

import torch  # noqa: E402
from image_helpers import save_tiny_vision, write_image_folder  # noqa: E402

import nbtune  # noqa: E402
from nbtune.core.tasks.handlers import handler_for  # noqa: E402
from nbtune.core.training.config import TrainConfig  # noqa: E402
from nbtune.core.training.events import StepEnded  # noqa: E402

DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("digits"), {"train": (0, 160)})


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return save_tiny_vision("resnet", tmp_path_factory.mktemp("vision") / "resnet")


def _features(s, digits, **settings):
    from nbtune.core.training.evaluation import prepare_data

    return prepare_data(s, handler_for(s), str(digits / "train"), TrainConfig(**settings), None, "training")


def test_augmentation_is_random_per_epoch_seeded_and_off_for_evaluation(resnet, digits):
    s = nbtune.load(resnet, labels=DIGITS)
    f = _features(s, digits, seed=3)
    first = f[0]["pixel_values"]
    assert torch.equal(first, _features(s, digits, seed=3)[0]["pixel_values"])  # same seed, epoch, example
    f.set_epoch(1)
    assert not torch.equal(first, f[0]["pixel_values"])  # another epoch, another crop
    plain = f.for_evaluation()[0]["pixel_values"]
    assert torch.equal(plain, _features(s, digits, seed=3, augment=False)[0]["pixel_values"])
    assert not torch.equal(plain, first)


def _run(resnet, digits, callbacks=(), resume=None, **extra):
    settings = dict(epochs=2, batch_size=16, lr=3e-3, seed=2, log=False, save_run=False, **extra)
    s = resume or nbtune.load(resnet, labels=DIGITS)
    s.train(str(digits / "train"), callbacks=list(callbacks), resume=resume is not None, **settings)
    return s


def test_an_augmented_run_interrupted_and_resumed_matches_the_uninterrupted_one(resnet, digits):
    ref = _run(resnet, digits)
    plain = _run(resnet, digits, augment=False)

    def stop_at(event, control):
        if isinstance(event, StepEnded) and event.step == 13:  # in the second epoch
            raise KeyboardInterrupt

    s = _run(resnet, digits, callbacks=[stop_at])
    assert s.training.global_step == 13
    s = _run(resnet, digits, resume=s)
    weights = [p.detach() for p in s.model.parameters()]
    assert all(torch.equal(a, b.detach()) for a, b in zip(weights, ref.model.parameters()))
    assert not all(torch.equal(a, b.detach()) for a, b in zip(weights, plain.model.parameters()))  # it augmented

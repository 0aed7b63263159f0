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


# -- timm and torchvision classifiers -------------------------------------------------------------------------------

def _timm_resnet(num_classes: int = 1000):
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_resnet", pretrained=False, num_classes=num_classes)


def _trained_params(s) -> set[str]:
    return {n for n, p in s.model.named_parameters() if p.requires_grad}


def _val_paths(digits, n=6):
    return [str(p) for p in sorted((digits / "train").rglob("*.png"))[:n]]


def test_a_timm_model_object_gets_the_users_classes_trains_and_reloads_without_the_object(digits, tmp_path):
    s = nbtune.load(_timm_resnet(), labels=DIGITS)
    assert s.task == "image-classification"
    assert s.model.config.num_labels == 10 and s.model.config.id2label[3] == "3"
    assert s.model.timm_model.fc.out_features == 10
    assert "layer4" in repr(s.layers(depth=2))
    assert s.summary(batch_size=4).memory.activations > 0  # measured: timm's config gives no layer sizes
    s.freeze("all")
    s.unfreeze("top:1")  # the last of timm's ResNet stages (layer1..layer4), and the head
    assert {n.split(".")[1] for n in _trained_params(s)} == {"layer4", "fc"}
    before = s.evaluate(str(digits / "train"))["loss"]
    s.train(str(digits / "train"), epochs=3, batch_size=16, lr=3e-3, log=False, save_run=False, augment=False)
    assert s.evaluate(str(digits / "train"))["loss"] < before
    s.save(tmp_path / "saved")
    again = nbtune.load(tmp_path / "saved")  # timm rebuilds the architecture by name; the processor from config
    assert type(again.model).__name__ == "TimmWrapperForImageClassification"
    paths = _val_paths(digits)
    assert again.predict(paths) == s.predict(paths)


def test_a_torchvision_classifier_trains_with_stages_batchnorm_and_lora_on_convolutions(digits, tmp_path):
    import torchvision

    torch.manual_seed(0)
    s = nbtune.load(torchvision.models.resnet18(weights=None), labels=DIGITS)
    assert s.task == "image-classification" and s.model.fc.out_features == 10
    assert any("ImageNet evaluation transform" in n for n in s.notes)
    s.freeze("all")
    s.unfreeze("top:1")
    assert {n.split(".")[0] for n in _trained_params(s)} == {"layer4", "fc"}
    s.freeze("type:BatchNorm2d")
    s.train_mode()
    assert not s.model.layer4[0].bn1.training and s.model.layer4[0].conv1.training  # frozen BatchNorm: eval mode
    s.unfreeze("all")
    head_only = nbtune.load(torchvision.models.resnet18(weights=None), labels=DIGITS)
    head_only.freeze("all")
    head_only.unfreeze("head")

    def saved(session, **size):  # the measured activations, less the optimizer's temporaries the estimate adds
        memory = session.summary(batch_size=8, **size).memory
        return memory.activations - memory.gradients // 2

    full = saved(s)
    assert saved(head_only) < full / 50  # measured: with the body frozen, backward keeps almost nothing
    assert 3.5 < full / saved(s, image_size=112) < 4.5  # a quarter of the pixels

    def base():  # the same "pretrained" body each time: a plain module's save holds what trained, not the body
        torch.manual_seed(5)
        return torchvision.models.resnet18(weights=None)

    lora = nbtune.load(base(), labels=DIGITS, seed=1)
    lora.add_lora(r=4, targets="re:layer4\\..*conv.*")
    trained = _trained_params(lora)
    assert any("lora_A" in n and "layer4" in n for n in trained) and any("fc.modules_to_save" in n for n in trained)
    before = lora.evaluate(str(digits / "train"))["loss"]
    lora.train(str(digits / "train"), epochs=2, batch_size=16, lr=3e-3, log=False, save_run=False, augment=False)
    assert lora.evaluate(str(digits / "train"))["loss"] < before
    lora.save(tmp_path / "lora")
    again = nbtune.load(base(), adapter=tmp_path / "lora", processor=lora.processor)
    paths = _val_paths(digits)
    assert again.predict(paths) == lora.predict(paths)


def test_torchvision_and_timm_by_name_offline_say_what_to_do():
    s = nbtune.load("torchvision:resnet18", weights=False)  # built on the meta device: no download
    assert s.task == "image-classification" and s.model.fc.out_features == 1000
    assert s.layers() is not None and s.summary().counts.total > 11_000_000
    with pytest.raises(nbtune.ModelLoadError, match="did you mean"):
        nbtune.load("torchvision:resnet181")
    with pytest.raises(nbtune.ModelLoadError, match="no pretrained weights"):
        nbtune.load("timm:not_a_model_xyz")
    with pytest.raises(nbtune.ModelLoadError, match="timm/resnet18.a1_in1k"):
        nbtune.load("timm:resnet18")  # the hub id timm names; offline, the download fails with the way out


def test_a_transforms_v2_pipeline_replaces_the_standard_augmentation_and_resume_asks_for_it(resnet, digits, tmp_path):
    from torchvision.transforms import v2

    s = nbtune.load(resnet, labels=DIGITS)
    pipeline = v2.Compose([v2.RandomRotation(30), v2.ColorJitter(0.5, 0.5)])
    own = _features(s, digits, seed=3, augment=pipeline)
    assert torch.equal(own[0]["pixel_values"], _features(s, digits, seed=3, augment=pipeline)[0]["pixel_values"])
    assert not torch.equal(own[0]["pixel_values"], _features(s, digits, seed=3)[0]["pixel_values"])
    preview = s.preview(str(digits / "train"), n=2, augment=pipeline)
    assert "RandomRotation" in preview.augmentation and len(preview.images[0].views) == 4
    normalised = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])
    with pytest.raises(nbtune.DataError, match="before v2.Normalize"):
        _features(s, digits, augment=normalised)[0]

    name = f"pipeline-{tmp_path.name}"

    def interrupt(event, control):
        if isinstance(event, StepEnded) and event.step == 1:
            raise KeyboardInterrupt

    s.train(str(digits / "train"), epochs=1, max_steps=2, batch_size=8, log=False, augment=pipeline, run_name=name,
            callbacks=[interrupt])
    with pytest.raises(nbtune.TrainConfigError, match="pass it again"):
        nbtune.resume(name, log=False)
    result = nbtune.resume(name, log=False, augment=pipeline)
    assert result.session.training.global_step == 2 and result.steps == 1
    again = nbtune.resume(name, log=False)  # finished now: returned at once, the pipeline is not needed
    assert again.steps == 0 and again.global_step == 2

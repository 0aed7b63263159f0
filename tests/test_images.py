"""Image classification on real images (scikit-learn's digits as PNG files) with tiny ViT, ConvNeXt and ResNet
models from transformers: the data forms people have, head replacement, training that learns, LoRA, predict,
save/reload, exact resume, recipes, and unreadable files reported instead of crashing a run."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from image_helpers import MORE_ARCHITECTURES, SIDE, digit_images, save_tiny_vision, write_image_folder
from PIL import Image

import nbtune
from nbtune.core.training.events import StepEnded

DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("digits"), {"train": (0, 240), "val": (1000, 120)})


@pytest.fixture(scope="module")
def vision(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    return {kind: save_tiny_vision(kind, root / kind) for kind in ("vit", "convnext", "resnet")}


def _weights(s):
    return {n: p.detach().clone() for n, p in s.model.named_parameters()}


@pytest.mark.parametrize("kind", ["vit", "convnext", "resnet"])
def test_any_image_classifier_loads_with_a_head_for_the_users_classes(vision, kind):
    s = nbtune.load(vision[kind], labels=DIGITS)  # the saved head has 3 outputs: replaced, no shape error
    assert s.task == "image-classification" and s.modality.name == "image"
    assert s.model.config.num_labels == 10 and s.model.config.id2label[7] == "7"
    assert "images" in repr(s)  # the processor is in the session's repr
    assert any("newly initialised" in n for n in s.notes)
    summary = s.summary(seq_len=SIDE)
    assert summary.counts.total == sum(p.numel() for p in s.model.parameters())
    out = s.predict(digit_images(1)[0][0])
    assert len(out) == 1 and out[0]["label"] in DIGITS and abs(sum(out[0]["scores"].values()) - 1) < 1e-5


@pytest.mark.parametrize("kind", sorted(MORE_ARCHITECTURES))
def test_every_architecture_family_loads_freezes_by_stage_and_trains(kind, digits, tmp_path):
    s = nbtune.load(save_tiny_vision(kind, tmp_path / kind), labels=DIGITS)
    assert s.task == "image-classification" and s.model.config.num_labels == 10
    s.freeze("all")
    report = s.unfreeze("top:1")  # the last block or stage, what follows it, and the head
    assert 0 < report.trainable_after < report.total
    s.unfreeze("all")
    losses = s.train(str(digits / "train"), epochs=3, batch_size=16, lr=3e-3, log=False, save_run=False).history.losses()
    # it learns: the training loss falls (a random MobileNet's BatchNorm statistics lag behind in eval mode)
    assert np.mean(losses[-8:]) < np.mean(losses[:8])


def test_an_image_folder_with_splits_trains_and_learns(vision, digits):
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    before = s.evaluate(str(digits / "val"))["accuracy"]
    run = s.train(str(digits), epochs=3, batch_size=16, lr=3e-3, seed=1, log=False, save_run=False)
    assert run.metrics["accuracy"] > max(0.5, before + 0.3), (before, run.metrics)  # val/ found and evaluated
    assert {"macro_f1", "top5_accuracy"} <= set(run.metrics)
    losses = run.history.losses()
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    label = s.predict(str(next((digits / "val" / "4").iterdir())))[0]["label"]
    assert label in DIGITS


def test_data_as_people_have_it(vision, digits, tmp_path):
    import datasets

    s = nbtune.load(vision["vit"], labels=DIGITS)
    images, labels = digit_images(12, 500)
    paths = sorted((digits / "train").rglob("*.png"))[:12]
    frame = pd.DataFrame({"path": [str(p) for p in paths], "label": [p.parent.name for p in paths]})
    frame.to_csv(tmp_path / "images.csv", index=False)
    with zipfile.ZipFile(tmp_path / "digits.zip", "w") as archive:
        for p in sorted(digits.rglob("*.png"))[::20]:
            archive.write(p, p.relative_to(digits.parent))
    dataset = datasets.Dataset.from_dict({"image": [Image.fromarray(i) for i in images], "label": labels},
                                         features=datasets.Features({"image": datasets.Image(),
                                                                     "label": datasets.Value("int64")}))
    forms = {
        "a DataFrame of paths": frame,
        "a CSV of paths": str(tmp_path / "images.csv"),
        "a datasets.Dataset with an Image feature": dataset,
        "a list of (PIL image, label)": [(Image.fromarray(i), y) for i, y in zip(images, labels)],
        "a list of (array, label)": list(zip(images, labels)),
        "a zip of class folders": str(tmp_path / "digits.zip"),
    }
    for form, data in forms.items():
        metrics = s.evaluate(data)
        assert 0 <= metrics["accuracy"] <= 1 and np.isfinite(metrics["loss"]), form


def test_unreadable_images_are_left_out_and_reported_by_path(vision, digits, tmp_path):
    import shutil

    root = tmp_path / "with-bad"
    shutil.copytree(digits / "train", root)
    (root / "3" / "broken.png").write_bytes(b"not a png at all")
    (root / "5" / "truncated.png").write_bytes((root / "5").glob("*.png").__next__().read_bytes()[:40])
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    with pytest.warns(UserWarning, match=r"left out 2 unreadable image\(s\):.*broken.png"):
        run = s.train(str(root), epochs=1, batch_size=16, log=False, save_run=False)
    assert run.steps == 15  # 240 readable images, batch 16
    assert any("truncated.png" in n for n in s.notes)


def test_lora_on_a_vit_trains_the_adapter_and_head_and_reloads_identically(vision, digits, tmp_path):
    s = nbtune.load(vision["vit"], labels=DIGITS)
    s.add_lora(r=4, targets="all-linear")
    trainable = {n for n, p in s.model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n and "attention" in n for n in trainable)
    assert any("classifier" in n and "modules_to_save" in n for n in trainable)
    assert not any(n.endswith("query.base_layer.weight") for n in trainable)
    s.train(str(digits), epochs=1, batch_size=16, lr=3e-3, log=False, save_run=False)
    s.save(tmp_path / "vit-lora")
    again = nbtune.load(tmp_path / "vit-lora")
    assert type(again.processor).__name__ == type(s.processor).__name__
    pixels = torch.randn(2, 3, SIDE, SIDE)
    s.eval_mode()
    assert torch.equal(s.model(pixel_values=pixels).logits, again.model(pixel_values=pixels).logits)
    assert again.predict(str(next((digits / "val" / "1").iterdir()))) == s.predict(
        str(next((digits / "val" / "1").iterdir())))


def test_an_interrupted_image_run_resumes_to_the_uninterrupted_weights(vision, digits, tmp_path):
    settings = dict(epochs=2, batch_size=16, lr=3e-3, seed=2, log=False, save_run=False)
    ref = nbtune.load(vision["resnet"], labels=DIGITS)
    ref.train(str(digits / "train"), **settings)

    def stop_at(event, control):
        if isinstance(event, StepEnded) and event.step == 11:
            raise KeyboardInterrupt

    s = nbtune.load(vision["resnet"], labels=DIGITS)
    run = s.train(str(digits / "train"), callbacks=[stop_at], **settings)
    assert run.cancelled or run.steps < 30
    s.train(str(digits / "train"), resume=True, **settings)
    assert all(torch.equal(a, b) for a, b in zip(_weights(s).values(), _weights(ref).values()))


def test_frozen_batchnorm_stays_in_eval_mode(vision):
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    s.freeze("all")
    s.unfreeze("head")
    s.train_mode()
    norms = [m for m in s.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    s.unfreeze("type:BatchNorm2d")
    s.train_mode()
    assert all(m.training for m in norms)


def test_a_finetune_cell_trains_an_image_folder(vision, digits, shell, tmp_path):
    shell.run_cell(f"""%%finetune -o images
model: {vision['resnet']}
task: image-classification
labels: {DIGITS}
data: {{train: {digits}}}
train: {{epochs: 1, batch_size: 16, save_run: false}}
""")
    result = shell.user_ns["images"]
    assert result.session.task == "image-classification" and "accuracy" in result.after


def test_images_in_memory_are_kept_as_files_by_a_run_folder_and_an_export(vision, tmp_path):
    images, labels = digit_images(32, 200)
    data = pd.DataFrame({"image": [Image.fromarray(i) for i in images], "label": [str(y) for y in labels]})
    nbtune.set_runs_folder(tmp_path / "runs")
    try:
        s = nbtune.load(vision["resnet"], labels=DIGITS)
        s.train(data, epochs=1, batch_size=16, log=False, run_name="in-memory")
        folder = tmp_path / "runs" / "in-memory" / "data"
        kept = pd.read_parquet(folder / "train.parquet")
        assert all((folder / v).is_file() for v in kept["image"])
        first = np.asarray(Image.open(folder / kept["image"][0]).convert("L"))
        assert np.array_equal(first, images[0])  # a faithful (lossless) copy
        path = s.export(tmp_path / "recipe.yaml", data={"train": data})
        assert (tmp_path / "images").is_dir() and path.is_file()
        resumed = nbtune.resume("in-memory", log=False)  # reads the stored images back
        assert resumed.global_step == 2
    finally:
        import os

        nbtune.set_runs_folder(os.environ["NBTUNE_RUNS_DIR"])


def test_bytes_and_datasets_cells_decode(vision):
    from nbtune.core.data.image_files import decode

    buffer = io.BytesIO()
    Image.fromarray(digit_images(1)[0][0]).save(buffer, format="PNG")
    for value in (buffer.getvalue(), {"bytes": buffer.getvalue(), "path": None},
                  torch.zeros(3, SIDE, SIDE), np.zeros((SIDE, SIDE, 3), dtype=np.float32)):
        assert decode(value).size == (SIDE, SIDE)


def test_fine_tune_trains_the_head_alone_then_everything_at_discriminative_rates(vision, digits):
    from nbtune.core.training.events import FitStarted

    s = nbtune.load(vision["resnet"], labels=DIGITS)
    total = sum(p.numel() for p in s.model.parameters())
    trainable_at_start = []

    def record(event, control):
        if isinstance(event, FitStarted):
            trainable_at_start.append(sum(p.numel() for p in s.model.parameters() if p.requires_grad))

    before = s.evaluate(str(digits / "val"))["accuracy"]
    result = s.fine_tune(str(digits), epochs=2, freeze_epochs=1, lr=1e-2, lr_mult=10, batch_size=16, seed=1,
                         log=False, save_run=False, callbacks=[record])
    head = sum(p.numel() for p in s.model.classifier.parameters())
    assert trainable_at_start == [head, total]  # phase 1: the head only; phase 2: everything
    assert result.frozen.steps == 15 and result.unfrozen.steps == 30
    assert result.unfrozen.config["head_lr"] == pytest.approx(5e-3)
    assert result.unfrozen.config["lr"] == pytest.approx(5e-4)
    assert result.metrics["accuracy"] > before + 0.2
    assert "frozen body: 15 steps" in repr(result) and "unfrozen: 30 steps" in repr(result)


def test_fine_tune_with_bad_settings_or_data_changes_nothing(vision, digits, tmp_path):
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    s.freeze("resnet.embedder")
    flags = {n: p.requires_grad for n, p in s.model.named_parameters()}
    with pytest.raises(nbtune.TrainConfigError, match="fine_tune sets head_lr itself"):
        s.fine_tune(str(digits), lr_mult=10, **{"head_lr": 1e-3})
    with pytest.raises(nbtune.TrainConfigError, match="lr_mult"):
        s.fine_tune(str(digits), lr_mult=0.5)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(nbtune.DataError, match="holds no images"):
        s.fine_tune(str(empty), log=False, save_run=False)
    assert flags == {n: p.requires_grad for n, p in s.model.named_parameters()}
    assert s.freeze_log == [("freeze", ("resnet.embedder",))]
    s.add_lora(r=2, targets=["convolution"])  # LoRA on a CNN's convolutions
    with pytest.raises(nbtune.AdapterError, match="has an adapter"):
        s.fine_tune(str(digits))


def test_a_saved_classifier_loaded_for_other_classes_gets_a_fresh_head(vision, tmp_path):
    s = nbtune.load(vision["resnet"], labels=["0", "1", "2"])
    s.save(tmp_path / "three")
    same = nbtune.load(tmp_path / "three", labels=["0", "1", "2"])
    assert torch.equal(same.model.classifier[-1].weight, s.model.classifier[-1].weight)  # same labels: kept
    other = nbtune.load(tmp_path / "three", labels=["5", "6", "7", "8"])
    assert other.model.config.num_labels == 4 and other.model.config.id2label[0] == "5"
    assert any("fresh head" in n for n in other.notes)


def test_confusion_matrix_and_top_losses_show_what_the_model_gets_wrong(vision, digits):
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    s.train(str(digits / "train"), epochs=2, batch_size=16, lr=3e-3, seed=1, log=False, save_run=False)
    val = str(digits / "val")
    c = s.confusion(val)
    assert len(c.matrix) == 10 and sum(map(sum, c.matrix)) == 120
    assert c.accuracy == pytest.approx(s.evaluate(val)["accuracy"])
    assert sum(c.matrix[i][i] for i in range(10)) == round(c.accuracy * 120)
    worst = c.most_confused(3)
    assert worst and all(t != p and n > 0 for t, p, n in worst) and worst == sorted(worst, key=lambda w: -w[2])
    assert "most confused" in repr(c) and "rgba(" in c._repr_html_()

    top = s.top_losses(val, k=6)
    assert len(top.items) == 6 and [i.loss for i in top.items] == sorted((i.loss for i in top.items), reverse=True)
    first = top.items[0]
    assert first.input.endswith(".png") and first.true == Path(first.input).parent.name  # the true label is the folder
    assert top._repr_html_().count("<img") == 6 and "predicted" in repr(top)


def test_top_losses_for_text_show_the_texts(tiny_dirs):
    from training_helpers import toy_rows

    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=2)
    data = toy_rows(24)
    top = s.top_losses(data, k=3)
    assert len(top.items) == 3 and all(isinstance(i.input, str) for i in top.items)
    assert all(i.input == data[i.index]["sentence"] for i in top.items)
    with pytest.raises(nbtune.TaskError, match="for classification"):
        nbtune.load(tiny_dirs["gpt2"], task="causal-lm").confusion(["a text"])


def test_without_labels_the_head_follows_the_data_and_evaluation_ids_follow_training(vision, digits, tmp_path):
    s = nbtune.load(vision["vit"])  # a 3-output head with default names
    assert s.model.config.num_labels == 3
    four = tmp_path / "four"
    for label in ("1", "3", "5", "7"):  # evaluation data without two of the six training classes
        (four / label).mkdir(parents=True)
        for k, path in enumerate(sorted((digits / "val" / label).iterdir())[:4]):
            (four / label / f"{k}.png").write_bytes(path.read_bytes())
    six = tmp_path / "six"
    for label in ("0", "1", "3", "5", "7", "9"):
        (six / label).mkdir(parents=True)
        for k, path in enumerate(sorted((digits / "train" / label).iterdir())[:12]):
            (six / label / f"{k}.png").write_bytes(path.read_bytes())
    run = s.train(str(six), eval=str(four), epochs=4, batch_size=12, lr=5e-3, log=False, save_run=False)
    assert s.model.config.num_labels == 6 and list(s.model.config.id2label.values()) == ["0", "1", "3", "5", "7", "9"]
    assert any("a fresh head for the data's 6 classes" in n for n in s.notes)
    # scored against the training ids: the same accuracy as evaluating the folder afterwards
    assert run.metrics["accuracy"] == pytest.approx(s.evaluate(str(four))["accuracy"])
    assert s.summary(image_size=64).memory.seq_len == (64 // 8) ** 2 + 1  # a ViT's patches at that size
    with pytest.raises(nbtune.DataError, match="4 classes not among the training data.s classes: .2., .4., .6., .8."):
        s.train(str(six), eval=str(digits / "val"), epochs=1, log=False, save_run=False)


def test_text_evaluation_data_lacking_a_class_scores_against_the_training_ids(tiny_dirs):
    train = pd.DataFrame({"text": ["good", "bad", "meh", "great", "awful", "fine"] * 4,
                          "label": ["pos", "neg", "mid", "pos", "neg", "mid"] * 4})
    held = pd.DataFrame({"text": ["good", "awful", "great"], "label": ["pos", "neg", "pos"]})
    s = nbtune.load(tiny_dirs["bert"], task="text-classification", num_labels=3)
    run = s.train(train, eval=held, epochs=3, lr=5e-3, batch_size=8, log=False, save_run=False)
    assert run.metrics["accuracy"] == pytest.approx(s.evaluate(held)["accuracy"])


def test_preview_shows_the_training_images_with_their_labels_as_static_html(vision, digits):
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    preview = s.preview(str(digits / "train"), n=3)
    assert preview.count == 240 and [i.label for i in preview.images] == ["0", "0", "0"]
    html = preview._repr_html_()
    assert html.count("data:image/png;base64") == sum(len(i.views) for i in preview.images) >= 3
    assert "240 training images" in repr(preview)
    try:
        import torchvision  # noqa: F401
    except ImportError:  # this environment: no augmentation, and the preview says why instead of pretending
        assert not preview.augmented and "not installed" in preview.augmentation
        assert all(len(i.views) == 1 for i in preview.images)
    off = s.preview(str(digits / "train"), n=2, augment=False)
    assert off.augmentation.startswith("off") and all(len(i.views) == 1 for i in off.images)
    with pytest.raises(nbtune.DataError):
        s.preview(str(digits / "nowhere"))


def test_measuring_activations_puts_every_module_mode_back(vision):
    s = nbtune.load(vision["resnet"], labels=DIGITS)
    # a ResNet config gives no transformer sizes: the estimate runs one forward and measures
    s.freeze("type:BatchNorm2d")
    for start in (s.eval_mode, s.train_mode):
        start()
        modes = [m.training for m in s.model.modules()]
        assert s.summary(batch_size=4).memory.activations > 0
        assert [m.training for m in s.model.modules()] == modes

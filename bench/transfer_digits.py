"""Does transfer learning do what it should? A small ResNet pretrained on digits 0-4 is fine-tuned on digits 5-9
(few images) four ways at the same budget of epochs, and compared with the same network trained from scratch.

Data: scikit-learn's bundled digits (real 8x8 scans, upscaled to 32x32), written as an ImageFolder tree.
Pretraining: digits 0-4, ``PRETRAIN`` images, ``PRETRAIN_EPOCHS`` epochs. Target: ``TRAIN`` images of digits 5-9 for training, the
rest of 5-9 held out. Every target run has ``EPOCHS`` epochs in all, batch 16, seed 0:

- ``frozen body``: body frozen, a new head trained;
- ``fine_tune``: nbtune's fastai schedule (1 epoch head-only at 1e-2, then everything, body at 1/10 of the head);
- ``LoRA``: LoRA r=4 on every convolution, new head trained;
- ``from scratch``: the same architecture, random weights, everything trained at 3e-3;
- ``frozen random body``: the control for ``frozen body``: a new head on the untrained body.

    python bench/transfer_digits.py                 # table + JSON to bench/results/transfer_digits_100_w16_e6_...json
    BENCH_TRAIN=25 python bench/transfer_digits.py  # five images per class
    BENCH_WIDTH=32 BENCH_EPOCHS=20 .venv-vision/bin/python bench/transfer_digits.py  # wider, longer, augmented
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PRETRAIN = int(os.environ.get("BENCH_PRETRAIN", 600))  # digits 0-4 from the first scans; 200 later ones held out
TRAIN = int(os.environ.get("BENCH_TRAIN", 100))  # target images (about a tenth per class of five)
EPOCHS = int(os.environ.get("BENCH_EPOCHS", 6))
PRETRAIN_EPOCHS = int(os.environ.get("BENCH_PRETRAIN_EPOCHS", 15))
WIDTH = int(os.environ.get("BENCH_WIDTH", 16))  # channels of the first stage; three stages of WIDTH, 2x, 4x
SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def main() -> None:
    from image_helpers import write_image_folder

    import nbtune

    root = Path(tempfile.mkdtemp(prefix="nbtune-transfer-"))
    nbtune.set_runs_folder(root / "runs")
    write_image_folder(root / "source", {"train": (0, PRETRAIN), "val": (1300, 200)}, classes=SOURCE)
    write_image_folder(root / "target", {"train": (0, TRAIN), "val": (600, 400)}, classes=TARGET)
    _save_resnet(root / "scratch", len(TARGET))
    _save_resnet(root / "init", len(SOURCE))
    common = dict(batch_size=16, seed=0, log=False, save_run=False, progress="none")

    pre = nbtune.load(root / "init", labels=[str(c) for c in SOURCE])
    pre.train(str(root / "source" / "train"), epochs=PRETRAIN_EPOCHS, lr=3e-3, **common)
    source_accuracy = pre.evaluate(str(root / "source" / "val"))["accuracy"]
    print(f"pretrained on digits 0-4: held-out accuracy {source_accuracy:.3f}", flush=True)
    pre.save(root / "pretrained")
    labels = [str(c) for c in TARGET]
    train, val = str(root / "target" / "train"), str(root / "target" / "val")

    def frozen(s):
        s.freeze("all")
        s.unfreeze("head")
        return s.train(train, epochs=EPOCHS, lr=1e-2, **common)

    def schedule(s):
        return s.fine_tune(train, epochs=EPOCHS - 1, freeze_epochs=1, lr=1e-2, lr_mult=10, **common)

    def lora(s):
        s.add_lora(r=4, targets=["convolution"])
        return s.train(train, epochs=EPOCHS, lr=1e-2, **common)

    def scratch(s):
        return s.train(train, epochs=EPOCHS, lr=3e-3, **common)

    results = {}
    for name, run, start in (("frozen body", frozen, "pretrained"), ("frozen random body", frozen, "scratch"),
                             ("fine_tune", schedule, "pretrained"),
                             ("LoRA", lora, "pretrained"), ("from scratch", scratch, "scratch")):
        s = nbtune.load(root / start, task="image-classification", labels=labels)
        began = time.perf_counter()
        run(s)
        seconds = time.perf_counter() - began
        metrics = s.evaluate(val)
        trainable = sum(p.numel() for p in s.model.parameters() if p.requires_grad)
        results[name] = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "seconds": seconds,
                         "trainable_at_end": trainable}
        print(f"{name:18s} accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  "
              f"{seconds:5.1f} s", flush=True)
    out = {"settings": {"pretrain_images": PRETRAIN, "pretrain_epochs": PRETRAIN_EPOCHS, "train_images": TRAIN,
                        "epochs": EPOCHS, "val_images": 400, "width": WIDTH,
                        "augmentation": _augments(),
                        "source_classes": SOURCE, "target_classes": TARGET},
           "pretrained_source_accuracy": source_accuracy, "results": results}
    target = HERE / "results" / f"transfer_digits_{TRAIN}_w{WIDTH}_e{EPOCHS}_cpu_2core.json"
    target.write_text(json.dumps(out, indent=1))
    print(f"-> {target}")


def _save_resnet(folder: Path, num_labels: int) -> None:
    """A small ResNet (three stages of WIDTH, 2x and 4x channels) with a 32x32 image processor, from a config."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification
    try:
        from transformers import ViTImageProcessorPil as Processor
    except ImportError:
        from transformers import ViTImageProcessor as Processor

    torch.manual_seed(0)
    ResNetForImageClassification(ResNetConfig(embedding_size=WIDTH, hidden_sizes=[WIDTH, 2 * WIDTH, 4 * WIDTH],
                                              depths=[1, 1, 1], layer_type="basic",
                                              num_labels=num_labels)).save_pretrained(folder)
    Processor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)


def _augments() -> bool:
    from nbtune.core.data.image_transforms import standard_augmentation

    return standard_augmentation()


if __name__ == "__main__":
    main()

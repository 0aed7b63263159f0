"""Does transfer learning do what it should? A small ResNet pretrained on digits 0-4 is fine-tuned on digits 5-9
(few images) four ways at the same budget of epochs, and compared with the same network trained from scratch.

Data: scikit-learn's bundled digits (real 8x8 scans, upscaled to 32x32), written as an ImageFolder tree.
Pretraining: digits 0-4, ``PRETRAIN`` images, ``PRETRAIN_EPOCHS`` epochs. Target: ``TRAIN`` images of digits 5-9 for
training, the rest of 5-9 held out. Every target run has ``EPOCHS`` epochs in all, batch 16, seeds 0..SEEDS-1:

- ``frozen body``: body frozen, a new head trained;
- ``fine_tune``: nbtune's fastai schedule (1 epoch head-only at 1e-2, then everything, body at 1/10 of the head);
- ``LoRA``: LoRA r=4 on every convolution, new head trained;
- ``from scratch``: the same architecture, random weights, everything trained at 3e-3;
- ``frozen random body``: the control for ``frozen body``: a new head on the untrained body.

    .venv-vision/bin/python bench/transfer_digits.py   # torchvision there: augmented; JSON to bench/results/
    BENCH_TRAIN=100 BENCH_EPOCHS=10 .venv-vision/bin/python bench/transfer_digits.py  # twenty images per class

Measured on this 2-core CPU (3 seeds, mean +- sd), held-out accuracy on 400 images of digits 5-9:

    25 images, 30 epochs:  frozen 0.566+-0.025  frozen random 0.317+-0.019  fine_tune 0.722+-0.054
                           LoRA 0.715+-0.060  scratch 0.697+-0.045
    100 images, 10 epochs: frozen 0.607+-0.017  frozen random 0.439+-0.131  fine_tune 0.797+-0.042
                           LoRA 0.762+-0.056  scratch 0.859+-0.006

The pretrained body is far better than a random one as a frozen feature extractor; with five images per class the
fastai schedule and LoRA edge out training from scratch (within one sd), with twenty per class scratch wins: digits
are easy to learn from scratch, and features from five other digits carry over only so far.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PRETRAIN = int(os.environ.get("BENCH_PRETRAIN", 900))  # digits 0-4 from the first scans; 200 later ones held out
TRAIN = int(os.environ.get("BENCH_TRAIN", 25))  # target images (five per class)
EPOCHS = int(os.environ.get("BENCH_EPOCHS", 30))
PRETRAIN_EPOCHS = int(os.environ.get("BENCH_PRETRAIN_EPOCHS", 20))
WIDTH = int(os.environ.get("BENCH_WIDTH", 32))
SEEDS = int(os.environ.get("BENCH_SEEDS", 3))  # target runs repeated with seeds 0..SEEDS-1: mean and spread  # channels of the first stage; three stages of WIDTH, 2x, 4x
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
        rounds = []
        for seed in range(SEEDS):  # the seed draws the new head, the data order and the augmentation
            common["seed"] = seed
            s = nbtune.load(root / start, task="image-classification", labels=labels, seed=seed)
            began = time.perf_counter()
            run(s)
            seconds = time.perf_counter() - began
            metrics = s.evaluate(val)
            rounds.append({"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "seconds": seconds})
        accuracy = [r["accuracy"] for r in rounds]
        trainable = sum(p.numel() for p in s.model.parameters() if p.requires_grad)
        results[name] = {"accuracy_mean": statistics.mean(accuracy),
                         "accuracy_sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                         "macro_f1_mean": statistics.mean(r["macro_f1"] for r in rounds),
                         "seconds_mean": statistics.mean(r["seconds"] for r in rounds),
                         "trainable_at_end": trainable, "rounds": rounds}
        print(f"{name:18s} accuracy {results[name]['accuracy_mean']:.3f} +- {results[name]['accuracy_sd']:.3f} "
              f"over {SEEDS} seeds  {results[name]['seconds_mean']:5.1f} s", flush=True)
    out = {"settings": {"pretrain_images": PRETRAIN, "pretrain_epochs": PRETRAIN_EPOCHS, "train_images": TRAIN,
                        "epochs": EPOCHS, "val_images": 400, "width": WIDTH, "seeds": SEEDS,
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

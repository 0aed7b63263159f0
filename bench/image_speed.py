"""Benchmark: image classification training speed, nbtune against a hand-written loop and the transformers Trainer
on the same data, model and settings, each run in its own process, rounds interleaved (medians reported).

Data: scikit-learn's digits as PNG files in an ImageFolder tree (``TRAIN`` training images, 300 held out), 32x32.
Model: a small ResNet from transformers (hidden sizes 32/64/128, one block per stage, ~0.3M parameters), built from
its config with a fixed seed and an image processor (PIL backend) resizing to 32x32. Settings: 2 epochs, batch 32,
AdamW lr 3e-3, fp32, no augmentation (``augment=False``: the hand loop and the Trainer apply none either).

- ``hand``: a Dataset that opens and processes each image in ``__getitem__``, a shuffled DataLoader, AdamW, the
  loop people write;
- ``torchvision``: ``torchvision.datasets.ImageFolder`` with a ``transforms.v2`` pipeline (resize, to tensor,
  normalise) and the same loop: what torchvision's tutorials write (where torchvision is installed);
- ``trainer``: the same Dataset through ``transformers.Trainer`` (its defaults otherwise, no evaluation);
- ``nbtune``: ``nbtune.load(folder, labels=...)`` then ``s.train(image_folder, augment=False)``.

Each reports images/s over its training time (model loading and data reading included; the libraries are imported
before the clock starts) and the held-out accuracy after.

    .venv-vision/bin/python bench/image_speed.py  # 3 rounds, table + JSON to bench/results/image_speed_cpu_2core.json
    python bench/image_speed.py --only nbtune   # one run, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

TRAIN, EPOCHS, BATCH, LR = 1000, 2, 32, 3e-3
RUNS = ("hand", "torchvision", "trainer", "nbtune")
LABELS = [str(i) for i in range(10)]


def _setup(root: Path) -> tuple[Path, Path]:
    import torch
    from image_helpers import SIDE, write_image_folder
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessorPil

    folder = root / "digits"
    if not folder.is_dir():
        write_image_folder(folder, {"train": (0, TRAIN), "val": (1400, 300)})
    model_dir = root / "resnet"
    if not model_dir.is_dir():
        torch.manual_seed(0)
        config = ResNetConfig(embedding_size=32, hidden_sizes=[32, 64, 128], depths=[1, 1, 1], layer_type="basic",
                              num_labels=10, id2label=dict(enumerate(LABELS)),
                              label2id={n: i for i, n in enumerate(LABELS)})
        ResNetForImageClassification(config).save_pretrained(model_dir)
        ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}, image_mean=[0.5] * 3,
                             image_std=[0.5] * 3).save_pretrained(model_dir)
    return folder, model_dir


class Folder:
    """(processed image, label) per file of an ImageFolder tree, opened per item."""

    def __init__(self, root: Path, processor):
        self.files = sorted(p for p in root.rglob("*.png"))
        self.processor = processor

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as image:
            pixels = self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixels, "labels": int(self.files[i].parent.name)}


def _accuracy(model, folder: Path, processor) -> float:
    import torch

    data = Folder(folder, processor)
    loader = torch.utils.data.DataLoader(data, batch_size=128)
    right = 0
    model.eval()
    with torch.inference_mode():
        for batch in loader:
            right += int((model(pixel_values=batch["pixel_values"]).logits.argmax(-1) == batch["labels"]).sum())
    return right / len(data)


def run_one(name: str, root: Path) -> dict:
    import torch
    from transformers import AutoImageProcessor, ResNetForImageClassification

    torch.manual_seed(0)
    folder, model_dir = _setup(root)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    # libraries imported before the clock starts, for every run alike: the time is training's, not Python's
    import accelerate  # noqa: F401
    import peft  # noqa: F401
    from transformers import Trainer, TrainingArguments

    import nbtune
    import nbtune.core.session.session  # noqa: F401  (nbtune's own lazy imports)

    start = time.perf_counter()
    if name == "nbtune":
        s = nbtune.load(model_dir, labels=LABELS)
        s.train(str(folder / "train"), epochs=EPOCHS, batch_size=BATCH, lr=LR, seed=0, augment=False, log=False,
                save_run=False, progress="none", precision="no", warmup=0.0)
        model = s.model
    else:
        model = ResNetForImageClassification.from_pretrained(model_dir)
        data = Folder(folder / "train", processor)
        if name == "torchvision":  # the loop of torchvision's tutorials: ImageFolder, a v2 transform, DataLoader
            from torchvision import datasets
            from torchvision.transforms import v2

            transform = v2.Compose([v2.Resize((32, 32), antialias=True), v2.ToImage(),
                                    v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])
            images = datasets.ImageFolder(str(folder / "train"), transform=transform)
            loader = torch.utils.data.DataLoader(images, batch_size=BATCH, shuffle=True)
            optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
            model.train()
            for _ in range(EPOCHS):
                for pixels, labels in loader:
                    loss = model(pixel_values=pixels, labels=labels).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
        elif name == "hand":
            loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
            optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
            model.train()
            for _ in range(EPOCHS):
                for batch in loader:
                    loss = model(**batch).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
        else:
            args = TrainingArguments(output_dir=str(root / "trainer-out"), per_device_train_batch_size=BATCH,
                                     num_train_epochs=EPOCHS, learning_rate=LR, report_to=[], save_strategy="no",
                                     logging_strategy="no", remove_unused_columns=False, seed=0,
                                     disable_tqdm=True, use_cpu=True)
            Trainer(model=model, args=args, train_dataset=data).train()
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "images_per_s": TRAIN * EPOCHS / seconds,
            "val_accuracy": _accuracy(model, folder / "val", processor)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "nbtune-image-speed"))
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.only:
        print(json.dumps(run_one(args.only, root)))
        return
    _setup(root)
    import importlib.util

    runs = [n for n in RUNS if n != "torchvision" or importlib.util.find_spec("torchvision") is not None]
    rounds = [{name: _isolated(name, root) for name in runs} for _ in range(args.rounds)]
    medians = {name: {k: statistics.median(r[name][k] for r in rounds) for k in rounds[0][name]} for name in runs}
    for name, m in medians.items():
        print(f"{name:8s} {m['images_per_s']:7.1f} images/s  {m['train_seconds']:6.1f} s  "
              f"val accuracy {m['val_accuracy']:.3f}")
    out = HERE / "results" / "image_speed_cpu_2core.json"
    out.write_text(json.dumps({"settings": {"train_images": TRAIN, "epochs": EPOCHS, "batch": BATCH, "lr": LR},
                               "medians": medians, "rounds": rounds}, indent=1))
    print(f"-> {out}")


def _isolated(name: str, root: Path) -> dict:
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, "--only", name, "--root", str(root)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

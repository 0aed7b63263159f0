"""Real images offline: scikit-learn's bundled digits (8x8 scans of handwritten digits) written as PNG files in
the ImageFolder layout, and tiny vision models built from configs with their image processors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SIDE = 32


def digit_images(n: int = 400, offset: int = 0, classes: tuple[int, ...] | None = None):
    """(uint8 HxW arrays upscaled to SIDE, labels) of the first ``n`` digits from ``offset`` (of ``classes``)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = [i for i in range(offset, len(digits.target)) if classes is None or digits.target[i] in classes][:n]
    images = [np.asarray(Image.fromarray((digits.images[i] * 15.9).astype(np.uint8)).resize((SIDE, SIDE)))
              for i in keep]
    return images, [int(digits.target[i]) for i in keep]


def write_image_folder(root: Path, splits: dict[str, tuple[int, int]],
                       classes: tuple[int, ...] | None = None) -> Path:
    """``root/<split>/<digit>/<index>.png`` for each split name -> (offset, count)."""
    from PIL import Image

    for split, (offset, count) in splits.items():
        images, labels = digit_images(count, offset, classes)
        for k, (image, label) in enumerate(zip(images, labels)):
            path = root / split / str(label) / f"{offset + k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    return root


# more of transformers' image classifiers, tiny, for the tests that every architecture family loads and trains
_VIT_LIKE = dict(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64)
MORE_ARCHITECTURES = {
    "deit": ("DeiTConfig", "DeiTForImageClassification", _VIT_LIKE),
    "beit": ("BeitConfig", "BeitForImageClassification", {**_VIT_LIKE, "use_mean_pooling": True}),
    "dinov2": ("Dinov2Config", "Dinov2ForImageClassification",
               {k: v for k, v in _VIT_LIKE.items() if k != "intermediate_size"}),
    "swin": ("SwinConfig", "SwinForImageClassification",
             dict(image_size=SIDE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4)),
    "mobilenet_v2": ("MobileNetV2Config", "MobileNetV2ForImageClassification",
                     dict(image_size=SIDE, depth_multiplier=0.35, classifier_dropout_prob=0.0)),
}


def save_tiny_vision(kind: str, folder: Path, num_labels: int = 3) -> Path:
    """A tiny ViT, ConvNeXt or ResNet (or one of ``MORE_ARCHITECTURES``) from transformers, with an image processor
    for SIDE x SIDE inputs."""
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessorPil,
    )

    torch.manual_seed(0)
    if kind == "vit":
        model = ViTForImageClassification(ViTConfig(
            image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, num_labels=num_labels))
    elif kind == "convnext":
        model = ConvNextForImageClassification(ConvNextConfig(
            hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=SIDE, num_labels=num_labels))
    elif kind == "resnet":
        model = ResNetForImageClassification(ResNetConfig(
            embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic", num_labels=num_labels))
    elif kind in MORE_ARCHITECTURES:
        import transformers

        config_name, model_name, settings = MORE_ARCHITECTURES[kind]
        model = getattr(transformers, model_name)(getattr(transformers, config_name)(**settings, num_labels=num_labels))
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    # the PIL backend: transformers' default image processors need torchvision, which this env does not have
    ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}, image_mean=[0.5] * 3,
                         image_std=[0.5] * 3).save_pretrained(folder)
    return folder

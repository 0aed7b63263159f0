"""From a decoded image to ``pixel_values``: the model's processor (a transformers image processor, or a
torchvision/timm transform), the size it produces, and the seeded training augmentation (torchvision's random
resized crop and flip, or the user's own ``transforms.v2`` pipeline)."""

from __future__ import annotations

import random
from typing import Any

import torch

from nbtune.core.common.errors import DataError
from nbtune.core.data.image_files import decode


def pixel_values(processor, image) -> torch.Tensor:
    """One image's ``pixel_values`` (C x H x W): a transformers image processor is called as transformers does, a
    torchvision or timm transform (what a torchvision classifier is loaded with) on the PIL image."""
    if hasattr(processor, "preprocess"):  # transformers' image processors, slow and fast
        return processor(images=image, return_tensors="pt")["pixel_values"][0]
    out = processor(image)
    if not isinstance(out, torch.Tensor) or out.ndim != 3:
        raise DataError(f"The image transform returned {type(out).__name__}, not a C x H x W tensor: end it with "
                        "v2.ToImage(), v2.ToDtype(torch.float32, scale=True) and v2.Normalize(mean, std).")
    return out


def standard_augmentation() -> bool:
    """Whether the standard augmentation can run (it is torchvision's; without torchvision images train as
    evaluation sees them)."""
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def augment(image, processor, rng, transform=None):
    """A random training view of ``image``, seeded from ``rng``: ``transform`` (the user's pipeline) where given,
    else torchvision's standard augmentation (random resized crop to the processor's size, horizontal flip); the
    image as it is where torchvision is not installed."""
    if transform is None:
        try:
            from torchvision.transforms import v2
        except ImportError:
            return image
        transform = v2.Compose([v2.RandomResizedCrop(target_size(processor, image), antialias=True),
                                v2.RandomHorizontalFlip()])
    seed = int(rng.integers(2**31))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = random.getstate()  # timm's and older torchvision transforms draw from Python's random module
        random.seed(seed)
        try:
            out = transform(image)
        finally:
            random.setstate(state)
    return out if hasattr(out, "convert") else _augmented_tensor(out)


def _augmented_tensor(out: Any):
    """A pipeline's tensor output as a PIL image for the model's processor, which normalises (once)."""
    if isinstance(out, torch.Tensor) and out.is_floating_point() and float(out.min()) < 0:
        raise DataError("The augment pipeline returned normalised pixels (values below 0); nbtune normalises with "
                        "the model's own mean and std, so end the pipeline before v2.Normalize (and ToDtype).")
    try:
        return decode(out)
    except (ValueError, TypeError):
        raise DataError(f"The augment pipeline returned {type(out).__name__}; it should take a PIL image and return "
                        "one (or an image tensor), e.g. v2.Compose([v2.RandomResizedCrop(224), "
                        "v2.RandomHorizontalFlip(), v2.ColorJitter(0.2, 0.2)]).") from None


def target_size(processor, image) -> tuple[int, int]:
    """(height, width) the model's processor produces: a transformers processor's crop size or size, a timm
    processor's input size, a torchvision preset's crop size or the last crop or resize of a ``Compose``."""
    config = getattr(processor, "data_config", None)  # timm's, through transformers' TimmWrapperImageProcessor
    if isinstance(config, dict) and config.get("input_size"):
        return int(config["input_size"][-2]), int(config["input_size"][-1])
    for attribute in (("crop_size",) if getattr(processor, "do_center_crop", True) else ()) + ("size",):
        pair = _size_pair(getattr(processor, attribute, None))
        if pair:
            return pair
    for step in reversed(list(getattr(processor, "transforms", ()))):
        pair = _size_pair(getattr(step, "size", None))
        if pair:
            return pair
    return image.size[1], image.size[0]


def _size_pair(size: Any) -> tuple[int, int] | None:
    """(height, width) from the ways libraries write a size: a dict, an int, or a sequence of one or two."""
    if size is not None and not isinstance(size, (dict, int, list, tuple)):  # transformers' SizeDict
        size = {k: getattr(size, k, None) for k in ("height", "width", "shortest_edge")}
    if isinstance(size, dict):
        if size.get("height") and size.get("width"):
            return int(size["height"]), int(size["width"])
        side = size.get("shortest_edge")
        return (int(side), int(side)) if side else None
    if isinstance(size, int):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) in (1, 2) and all(isinstance(x, int) for x in size):
        return int(size[0]), int(size[-1])
    return None

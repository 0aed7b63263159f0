"""Images: files, bytes, PIL images, arrays or ``datasets`` Image cells, decoded one at a time as batches ask.

The session's image processor (its size, mean, std and crop) turns a decoded image into ``pixel_values``; training
adds torchvision's standard augmentation (a random resized crop to the processor's size and a horizontal flip)
where torchvision is installed, seeded per example and epoch. Data may also be a folder of class folders (the
ImageFolder layout, with ``train/`` and ``val/`` splits found when present) or a list of ``(image, label)`` pairs.
Images are never cached decoded: a few thousand of them would not fit.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbtune.core.common.errors import DataError
from nbtune.core.data.modality import Modality, register_modality
from nbtune.core.model.architecture import unwrap

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
EVAL_SPLITS = ("val", "validation", "valid", "dev", "test")
STORED = "images/"  # run folders and exports keep images under this folder, the table their relative paths


def _pil():
    from PIL import Image

    return Image


def is_image_value(value: Any) -> bool:
    """A value this modality reads: a PIL image, an image file path, encoded bytes, an array or a datasets cell."""
    if isinstance(value, (str, os.PathLike)):
        return str(value).lower().endswith(IMAGE_SUFFIXES)
    if isinstance(value, dict):
        return "bytes" in value or "path" in value
    if isinstance(value, (bytes, bytearray)):
        return True
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim in (2, 3)
    return hasattr(value, "convert") and hasattr(value, "size")  # a PIL image


def _encoded(value: Any) -> Any:
    """A ``datasets`` Image cell's bytes or path; any other value as it is."""
    return (value.get("bytes") or value.get("path")) if isinstance(value, dict) else value


def _open(value: Any):
    """A PIL image opened lazily from a path or encoded bytes (a context manager), or None for other values."""
    Image = _pil()
    if isinstance(value, (str, os.PathLike)):
        return Image.open(value)
    if isinstance(value, (bytes, bytearray)):
        return Image.open(io.BytesIO(value))
    return None


def decode(value: Any):
    """``value`` as an RGB PIL image (a datasets cell ``{"bytes", "path"}``, a path, bytes, an HxW[xC] array or a
    CxHxW tensor); raises OSError/ValueError when it is not a readable image."""
    value = _encoded(value)
    opened = _open(value)
    if opened is not None:
        with opened as image:
            return image.convert("RGB")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
        if value.ndim == 3 and value.shape[0] in (1, 3, 4) and value.shape[-1] not in (1, 3, 4):
            value = value.transpose(1, 2, 0)  # CxHxW, as torchvision holds images
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8:
            value = np.clip(value * (255.0 if value.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if value.ndim == 3 and value.shape[-1] == 1:
            value = value[..., 0]
        return _pil().fromarray(value).convert("RGB")
    if hasattr(value, "convert"):
        return value.convert("RGB")
    raise ValueError(f"not an image: {type(value).__name__}")


def thumbnail(value: Any, side: int = 96) -> str:
    """A small PNG of an image input, base64-encoded for an inline ``<img>`` (galleries and previews)."""
    image = decode(value)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _check(value: Any) -> str | None:
    """Why ``value`` cannot be read as an image, or None (files are opened and verified, not decoded)."""
    try:
        opened = _open(_encoded(value))
        if opened is not None:
            with opened as image:
                image.verify()
        elif not is_image_value(value):
            return f"not an image ({type(value).__name__})"
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some broken files
        return f"{type(exc).__name__}: {exc}"
    return None


def image_folder(root: Path) -> "Any":
    """A table of (image path, label) for a folder of class folders; the class is the folder's name."""
    import pandas as pd

    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = [(str(f), c.name) for c in classes for f in sorted(c.rglob("*"))
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not rows:
        raise DataError(f"{root} holds no images in class folders (expected {root}/<class>/<image>.png ...).")
    return pd.DataFrame(rows, columns=["image", "label"])


def _splits(root: Path) -> tuple[Path | None, Path | None]:
    """The training and evaluation folders of an ImageFolder tree with splits (train/ and val/...), if it has them."""
    train = root / "train" if (root / "train").is_dir() else None
    evaluation = next((root / name for name in EVAL_SPLITS if (root / name).is_dir()), None)
    return train, evaluation


@register_modality
class ImageModality(Modality):
    name = "image"
    description = "images (files, bytes, PIL, arrays, datasets Image), decoded per item; augmented in training"
    deterministic = False  # random crops and flips: encoded per item and epoch, never cached decoded

    # -- reading -----------------------------------------------------------------------------------------------
    def read(self, value: Any, where: str) -> Any:
        problem = _check(value)
        if problem is not None:
            shown = value if isinstance(value, (str, os.PathLike)) else type(value).__name__
            raise DataError(f"{where.capitalize()} ({shown}) is not a readable image: {problem}.")
        return value

    def read_column(self, values: list, column: str) -> tuple[list, list[int], list[str]]:
        """The readable images of a column, their row numbers, and one line per unreadable one (path and reason):
        a corrupt file is left out and reported, not a crash in the middle of training."""
        kept, rows, bad = [], [], []
        for i, value in enumerate(values):
            problem = _check(value)
            if problem is None:
                kept.append(value)
                rows.append(i)
            else:
                shown = value if isinstance(value, (str, os.PathLike)) else f"row {i}"
                bad.append(f"{shown} ({problem})")
        return kept, rows, bad

    def source(self, data: Any, split: str | None):
        """A folder of class folders, a zip of one, or a list of (image, label) pairs, as a table."""
        import pandas as pd

        if isinstance(data, (list, tuple)) and data and all(
                isinstance(x, tuple) and len(x) == 2 and is_image_value(x[0]) for x in data):
            return pd.DataFrame({"image": [x[0] for x in data], "label": [x[1] for x in data]})
        root = _folder(data)
        if root is None:
            return None
        train, evaluation = _splits(root)
        if split == "eval":
            return image_folder(evaluation) if evaluation else None
        return image_folder(train or root)

    def eval_split(self, data: Any) -> str | None:
        root = _folder(data)
        return "eval" if root is not None and all(_splits(root)) else None

    # -- encoding ----------------------------------------------------------------------------------------------
    def encode(self, session, value: Any, train: bool, rng, transform=None) -> dict[str, Any]:
        """``transform``: the user's random training transform (``augment=`` a torchvision ``transforms.v2``
        pipeline), used in place of the standard crop and flip; the model's processor still normalises."""
        return {"pixel_values": pixel_values(self.processor(session), self.view(session, value, train, rng,
                                                                                  transform))}

    def view(self, session, value: Any, train: bool, rng, transform=None):
        """The PIL image the processor is given: ``value`` decoded and, in training with an ``rng``, augmented (what
        ``s.preview`` shows)."""
        image = decode(value)
        if train and rng is not None:
            image = augment(image, self.processor(session), rng, transform)
        return image

    def batch_size(self, batch: dict[str, Any]) -> int:
        return int(batch["pixel_values"].shape[0])

    def positions(self, config: Any, size: int) -> int:
        """Patches of a ``size`` x ``size`` image for a vision transformer (plus its class token); 1 for others."""
        patch = getattr(config, "patch_size", None)
        if isinstance(patch, (list, tuple)):
            patch = patch[0]
        return (size // patch) ** 2 + 1 if isinstance(patch, int) and patch > 0 else 1

    def probe_batch(self, model: torch.nn.Module) -> dict[str, Any] | None:
        from transformers import PreTrainedModel

        inner = unwrap(model)[0]
        if not isinstance(inner, PreTrainedModel):  # a torchvision model takes a tensor, not pixel_values=
            return None
        config = inner.config
        timm_input = (getattr(config, "pretrained_cfg", None) or {}).get("input_size")  # a timm model's (C, H, W)
        side = timm_input[-1] if timm_input else getattr(config, "image_size", 32)
        side = side[0] if isinstance(side, (list, tuple)) else side
        channels = timm_input[0] if timm_input else getattr(config, "num_channels", 3)
        parameter = next(model.parameters())
        return {"pixel_values": torch.zeros(1, channels, side, side, device=parameter.device)}

    def preview(self, session, features_of, n: int, cfg):
        """The first ``n`` training images as the model will see them: each one as evaluation sees it, then its
        augmented views in the first epochs (the same seeded crops and flips training draws)."""
        from nbtune.core.data.image_preview import ImagePreview

        return ImagePreview.of(session, self, features_of(), n, cfg)

    def example_size(self, session, seq_len: int) -> int:
        """The side of the images the processor makes (the memory estimate's default)."""
        return max(self._side(session))

    def _side(self, session) -> tuple[int, int]:
        """(height, width) the processor makes; without one, the config's image size (224 if it has none)."""
        from PIL import Image

        try:
            return target_size(self.processor(session), Image.new("RGB", (224, 224)))
        except DataError:
            side = getattr(getattr(session.model, "config", None), "image_size", None) or 224
            side = side[0] if isinstance(side, (list, tuple)) else side
            return int(side), int(side)

    def measure_batch(self, session, size: int | None) -> tuple[dict[str, Any], str] | None:
        height, width = (size, size) if size else self._side(session)
        channels = 3
        parameter = next(session.model.parameters())
        return ({"pixel_values": torch.zeros(1, channels, height, width, device=parameter.device),
                 "labels": torch.zeros(1, dtype=torch.long, device=parameter.device)}, f"{height}x{width} images")

    def is_single(self, value: Any) -> bool:
        return is_image_value(value) and not isinstance(value, dict)

    # -- storing -----------------------------------------------------------------------------------------------
    def store(self, table, folder: Path):
        """Image columns as files under ``folder/images`` named by their content (PNG for decoded images, the
        file's own bytes otherwise); the table keeps their relative paths."""
        table = table.copy()
        for column in table.columns:
            values = table[column]
            if not len(table) or not values.map(is_image_value).all() or values.map(
                    lambda v: isinstance(v, str) and v.startswith(STORED)).all():
                continue
            (folder / STORED).mkdir(parents=True, exist_ok=True)
            table[column] = [_store_one(v, folder) for v in values]
        return table

    def restore(self, table, folder: Path):
        table = table.copy()
        for column in table.columns:
            values = table[column]
            if len(table) and values.map(lambda v: isinstance(v, str) and v.startswith(STORED)).all():
                table[column] = [str(folder / v) for v in values]
        return table

    @staticmethod
    def processor(session):
        processor = session.processor
        processor = getattr(processor, "image_processor", None) or processor
        if processor is None or not callable(processor):
            raise DataError("Images need an image processor (its size, mean and std); load the model with one "
                            "(nbtune.load(..., processor='path/or/hub-id')) or set session.processor.")
        return processor


def _store_one(value: Any, folder: Path) -> str:
    value = _encoded(value)
    if isinstance(value, (str, os.PathLike)):
        data, suffix = Path(value).read_bytes(), Path(value).suffix.lower()
    elif isinstance(value, (bytes, bytearray)):
        data, suffix = bytes(value), ".img"
    else:
        buffer = io.BytesIO()
        decode(value).save(buffer, format="PNG")  # lossless: the stored copy is the image trained on
        data, suffix = buffer.getvalue(), ".png"
    name = f"{STORED}{hashlib.sha1(data).hexdigest()[:20]}{suffix}"
    if not (folder / name).exists():
        (folder / name).write_bytes(data)
    return name


def _folder(data: Any) -> Path | None:
    """The folder ``data`` names (a zip of one extracted), or None when it is no folder."""
    if not isinstance(data, (str, os.PathLike)):
        return None
    root = Path(data).expanduser()
    if root.is_file() and root.suffix.lower() == ".zip":
        root = _unzipped(root)
    return root if root.is_dir() else None


def _unzipped(path: Path) -> Path:
    """A zip of image folders, extracted once beside itself (``name.zip`` -> ``name/``) unless already there."""
    import zipfile

    target = path.with_suffix("")
    if not target.is_dir():
        with zipfile.ZipFile(path) as archive:
            archive.extractall(target)
    entries = [p for p in target.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() and not _has_images(target) else target


def _has_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.iterdir() if f.is_file())


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

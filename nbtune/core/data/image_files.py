"""Image files and values: what counts as an image, decoding one (a path, bytes, a PIL image, an array, a
``datasets`` Image cell), checking one without decoding it, thumbnails, class-folder trees and zips of them, and
the content-named copies run folders keep. No model, no processor: the image modality and the previews build on
these."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbtune.core.common.errors import DataError

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


def problem(value: Any) -> str | None:
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


def splits(root: Path) -> tuple[Path | None, Path | None]:
    """The training and evaluation folders of an ImageFolder tree with splits (train/ and val/...), if it has them."""
    train = root / "train" if (root / "train").is_dir() else None
    evaluation = next((root / name for name in EVAL_SPLITS if (root / name).is_dir()), None)
    return train, evaluation


def store_one(value: Any, folder: Path) -> str:
    """``value`` written under ``folder/images/`` named by its content (its own bytes, or PNG for a decoded image);
    the relative path, which a stored table keeps."""
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


def folder_of(data: Any) -> Path | None:
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

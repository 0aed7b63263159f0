"""Images: files, bytes, PIL images, arrays or ``datasets`` Image cells, decoded one at a time as batches ask.

The session's image processor (its size, mean, std and crop) turns a decoded image into ``pixel_values``; training
adds torchvision's standard augmentation (a random resized crop to the processor's size and a horizontal flip)
where torchvision is installed, seeded per example and epoch. Data may also be a folder of class folders (the
ImageFolder layout, with ``train/`` and ``val/`` splits found when present) or a list of ``(image, label)`` pairs.
Images are never cached decoded: a few thousand of them would not fit. Files are read by
``nbtune.core.data.image_files``, encoded by ``nbtune.core.data.image_transforms``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nbtune.core.common.errors import DataError
from nbtune.core.data.image_files import (
    STORED,
    decode,
    folder_of,
    image_folder,
    is_image_value,
    problem,
    splits,
    store_one,
)
from nbtune.core.data.image_transforms import augment, pixel_values, target_size
from nbtune.core.data.modality import Modality, register_modality
from nbtune.core.model.architecture import unwrap


@register_modality
class ImageModality(Modality):
    name = "image"
    description = "images (files, bytes, PIL, arrays, datasets Image), decoded per item; augmented in training"
    deterministic = False  # random crops and flips: encoded per item and epoch, never cached decoded

    # -- reading -----------------------------------------------------------------------------------------------
    def read(self, value: Any, where: str) -> Any:
        why = problem(value)
        if why is not None:
            shown = value if isinstance(value, (str, os.PathLike)) else type(value).__name__
            raise DataError(f"{where.capitalize()} ({shown}) is not a readable image: {why}.")
        return value

    def read_column(self, values: list, column: str) -> tuple[list, list[int], list[str]]:
        """The readable images of a column, their row numbers, and one line per unreadable one (path and reason):
        a corrupt file is left out and reported, not a crash in the middle of training."""
        kept, rows, bad = [], [], []
        for i, value in enumerate(values):
            why = problem(value)
            if why is None:
                kept.append(value)
                rows.append(i)
            else:
                shown = value if isinstance(value, (str, os.PathLike)) else f"row {i}"
                bad.append(f"{shown} ({why})")
        return kept, rows, bad

    def source(self, data: Any, split: str | None):
        """A folder of class folders, a zip of one, or a list of (image, label) pairs, as a table."""
        import pandas as pd

        if isinstance(data, (list, tuple)) and data and all(
                isinstance(x, tuple) and len(x) == 2 and is_image_value(x[0]) for x in data):
            return pd.DataFrame({"image": [x[0] for x in data], "label": [x[1] for x in data]})
        root = folder_of(data)
        if root is None:
            return None
        train, evaluation = splits(root)
        if split == "eval":
            return image_folder(evaluation) if evaluation else None
        return image_folder(train or root)

    def eval_split(self, data: Any) -> str | None:
        root = folder_of(data)
        return "eval" if root is not None and all(splits(root)) else None

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
            table[column] = [store_one(v, folder) for v in values]
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

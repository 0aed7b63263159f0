"""``s.preview(data)`` for images: a grid of training images as the model will see them, each as evaluation sees it
and then in the augmented views training draws for it in its first epochs (same seeds, so the very same crops and
flips). Thumbnails are inline PNGs: the grid stays in a saved notebook."""

from __future__ import annotations

from dataclasses import dataclass, field

from nbtune.core.data.image_files import thumbnail
from nbtune.core.data.image_transforms import standard_augmentation

EPOCHS_SHOWN = 3


@dataclass
class PreviewImage:
    index: int
    label: str | None
    views: list[str]  # base64 PNGs: the evaluation view, then epoch 0, 1, ... of training


@dataclass
class ImagePreview:
    images: list[PreviewImage]
    count: int
    augmented: bool
    augmentation: str
    unreadable: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, session, modality, features, n: int, cfg) -> "ImagePreview":
        names = getattr(getattr(session.model, "config", None), "id2label", None) or {}
        names = {**names, **(features.label_names or {})}  # names learned from this data, before training sets them
        transform = cfg.augment if callable(cfg.augment) else None
        augmented = bool(cfg.augment) and (transform is not None or standard_augmentation())
        images = []
        for i, row in enumerate(features.rows[:n]):
            views = [modality.view(session, row["value"], False, None)]
            if augmented:
                views += [modality.view(session, row["value"], True, features.rng(i, e), transform)
                          for e in range(EPOCHS_SHOWN)]
            label = row["extra"].get("labels")
            images.append(PreviewImage(i, None if label is None else str(names.get(int(label), label)),
                                       [thumbnail(v, 112) for v in views]))
        described = ("off (augment=False)" if not cfg.augment else
                     " ".join(repr(cfg.augment).split()) if transform is not None else
                     "random resized crop to the model's input size and horizontal flip" if augmented else
                     "none: the standard augmentation is torchvision's, which is not installed here "
                     "(pip install torchvision)")
        return cls(images, len(features.rows), augmented, described, list(features.meta.get("unreadable") or []))

    def __repr__(self) -> str:
        from nbtune.render.diagnose import image_preview_text

        return image_preview_text(self)

    def _repr_html_(self) -> str:
        from nbtune.render.diagnose import image_preview_html

        return image_preview_html(self)

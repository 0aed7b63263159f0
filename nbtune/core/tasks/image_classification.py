"""Image classification: any ``AutoModelForImageClassification`` model (ViT, DeiT, BEiT, ConvNeXt, ResNet, Swin,
DINOv2, MobileNet...) with its image processor; the head is sized to the user's classes like a text classifier's.
Labels are read, checked and mapped as text classification does; the inputs are the image modality's."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from nbtune.core.common.errors import few
from nbtune.core.data.features import DataError, Features
from nbtune.core.data.image_transforms import standard_augmentation
from nbtune.core.model.architecture import unwrap
from nbtune.core.tasks import has_default_names
from nbtune.core.tasks.base import TaskHandler, in_length_order
from nbtune.core.tasks.classification import LABEL, ClassificationTask
from nbtune.core.tasks.registry import register_task

IMAGE = ("image", "img", "pixel_values", "path", "file", "filepath", "image_path", "filename")


@register_task
class ImageClassificationTask(ClassificationTask):
    name = "image-classification"
    order = 60
    aliases = ("image-classifier", "vision")
    description = "an image's class (transfer learning from ImageNet-style backbones)"
    auto_class = "AutoModelForImageClassification"
    class_suffixes = ("ForImageClassification",)
    peft_task_type = None  # peft has no image task type; the new head is saved as a module of its own
    columns = {"image": IMAGE, "label": LABEL}
    label_role = "label"
    modality = "image"
    collator = TaskHandler.collator  # the modality's (stacked pixel values), not text padding
    eval_batch_factor = 2

    @classmethod
    def problem_type(cls, num_labels: int) -> str:
        return "single_label_classification"

    def forward(self, model, batch: dict[str, torch.Tensor]):
        """transformers models (timm ones through transformers' wrapper) take ``pixel_values=`` and compute their
        loss; a torchvision classifier takes the tensor and returns logits, and the loss is cross-entropy."""
        from transformers import PreTrainedModel
        from transformers.modeling_outputs import ImageClassifierOutput

        if isinstance(unwrap(model)[0], PreTrainedModel):
            return model(**batch)
        logits = model(batch["pixel_values"])
        logits = logits.logits if hasattr(logits, "logits") else logits  # e.g. GoogLeNet's outputs in training
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"]) if "labels" in batch else None
        return ImageClassifierOutput(loss=loss, logits=logits)

    @classmethod
    def for_session(cls, session) -> "ImageClassificationTask":
        return cls()

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        image_col = self.column(table, "image", cfg.columns)
        label_col = self.column(table, "label", cfg.columns, required=require_labels)
        modality = self.inputs()
        modality.processor(session)  # no processor: one clear error before any image is opened
        images, rows, bad = modality.read_column(table[image_col].tolist(), image_col)
        if not images:
            raise DataError(f"None of the {len(table)} images in column {image_col!r} can be read; the first: "
                            f"{bad[0]}.")
        labels, names = (self.encode_labels(session, [table[label_col].iloc[i] for i in rows], label_col, rows)
                         if label_col else (None, None))
        extra = [{"labels": y} for y in labels] if labels is not None else None
        return self.encoded_per_item(session, images, cfg, extra, label_names=names,
                                     meta={"unreadable": bad, "rows": rows,
                                           "no_augmentation": cfg.augment is True and not standard_augmentation()})

    def _names_to_ids(self, config, num_labels: int, values: list[str]):
        """Label names the head was made for map to its ids. Names it was not made for (a pretrained ImageNet head
        and the user's classes, or a default head of another width) get ids of their own, sorted, and ``apply``
        gives the model a fresh head for them: the head follows the data, as fastai's does."""
        names = sorted(set(values))
        current = [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)]
        if names == current or (not has_default_names(config.id2label) and set(names) <= set(current)):
            return super()._names_to_ids(config, num_labels, values)
        lookup = {name: i for i, name in enumerate(names)}
        return [lookup[v] for v in values], dict(enumerate(names))

    def apply(self, session, features: Features) -> None:
        names = features.label_names
        config = unwrap(session.model)[0].config
        current = [config.id2label.get(i) for i in range(config.num_labels)]
        wanted = [names[i] for i in range(len(names))] if names else None
        if wanted and wanted != current and (len(wanted) != len(current) or not has_default_names(config.id2label)):
            session.reset_head(labels=wanted)
            session.notes.append(f"a fresh head for the data's {len(wanted)} classes ({few(wanted, 6)}); the model's had "
                                 f"{len(current)}")
        else:
            super().apply(session, features)
        note = ("no augmentation: the standard one (random resized crop, flip) is torchvision's, which is not "
                "installed here; pip install torchvision, or pass augment=False to say so")
        if features.meta.get("no_augmentation") and note not in session.notes:
            session.notes.append(note)
        bad = features.meta.get("unreadable") or []
        if bad:
            shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            note = f"left out {len(bad)} unreadable image(s): {shown}"
            session.notes.append(note)
            warnings.warn(note, stacklevel=2)

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        out = super().metrics(store, loss, features)
        if "labels" in store:
            logits, labels = torch.cat(store["logits"]), torch.cat(store["labels"])
            if logits.shape[-1] > 5:  # top-5 means something only beyond five classes
                top5 = logits.topk(5, dim=-1).indices
                out["top5_accuracy"] = float((top5 == labels[:, None]).any(-1).float().mean())
        return out

    def predict(self, session, items, batch_size, max_length) -> list[dict[str, Any]]:
        """Label and scores per image (a path, PIL image, array or bytes)."""
        modality = self.inputs()
        device = next(session.model.parameters()).device
        read = [modality.read(x, f"input {i}") for i, x in enumerate(items)]

        def run(chunk: list) -> list[dict[str, Any]]:
            batch = modality.collate(session, [modality.encode(session, x, False, None) for x in chunk])
            return self.predict_rows(session, self.forward(session.model,
                                                           {"pixel_values": batch["pixel_values"].to(device)}).logits)

        return in_length_order(read, lambda x: 0, batch_size, run)

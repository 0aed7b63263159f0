"""What a classifier gets wrong: the confusion matrix with its most confused pairs, and the examples with the
highest loss (true and predicted label, probability), for text and image classification alike.

One evaluation pass in input order gives every example's logits; the pictures (an HTML heat map, a gallery of
thumbnails or texts) are built in ``nbtune.render.diagnose`` and stay in a saved notebook as static HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nbtune.core.common.errors import TaskError
from nbtune.core.data.batching import make_loader, to_device
from nbtune.core.data.image_files import thumbnail
from nbtune.core.tasks.handlers import handler_for
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.evaluation import prepare_data, table_of
from nbtune.render.diagnose import confusion_html, confusion_text, losses_html, losses_text


@dataclass
class Confusion:
    """``matrix[i][j]``: examples of class ``labels[i]`` predicted as ``labels[j]``."""

    labels: list[str]
    matrix: list[list[int]]
    accuracy: float

    def most_confused(self, n: int = 5) -> list[tuple[str, str, int]]:
        """The ``n`` largest off-diagonal cells: (true, predicted, count), most first."""
        cells = [(self.labels[i], self.labels[j], c) for i, row in enumerate(self.matrix)
                 for j, c in enumerate(row) if i != j and c]
        return sorted(cells, key=lambda cell: -cell[2])[:n]

    def __repr__(self) -> str:
        return confusion_text(self)

    def _repr_html_(self) -> str:
        return confusion_html(self)


@dataclass
class TopLoss:
    index: int  # the example's row in the data
    input: Any  # its text, or its image (path, PIL image, array, bytes)
    true: str
    predicted: str
    probability: float  # of the predicted label
    true_probability: float
    loss: float
    thumbnail: str | None = None  # a base64 PNG of an image input, for the gallery


@dataclass
class TopLosses:
    """The examples the model is most wrong about, highest loss first."""

    items: list[TopLoss] = field(default_factory=list)
    modality: str = "text"

    def __repr__(self) -> str:
        return losses_text(self)

    def _repr_html_(self) -> str:
        return losses_html(self)


def _pass(session, data, batch_size: int, columns: dict[str, str] | None):
    """(logits, labels, inputs, rows) for every example of ``data``, in input order."""
    handler = handler_for(session)
    if not (handler.labelled and hasattr(handler, "predict_rows")) or getattr(handler, "regression", False):
        raise TaskError(f"The confusion matrix and top losses are for classification; this session's task is "
                        f"{session.task}. Use s.evaluate(data) for its metrics.")
    session.require_weights("diagnose")
    cfg = TrainConfig(columns=dict(columns or {}))
    features = prepare_data(session, handler, data, cfg, None, "evaluation")
    # input order (not length-grouped): logits line up with the inputs they came from
    loader = make_loader(features, handler.eval_collator(session, cfg), batch_size, cfg.seed, shuffle=False,
                         group_by_length=False)
    device = next(session.model.parameters()).device
    session.eval_mode()
    logits, labels = [], []
    with torch.inference_mode():
        for batch in loader:
            batch = to_device(batch, device)
            if "labels" not in batch:
                raise TaskError("The data has no labels: the confusion matrix compares them with the predictions.")
            labels.append(batch["labels"].cpu())
            out = handler.forward(session.model, {k: v for k, v in batch.items() if k != "labels"})
            logits.append(out.logits.float().cpu())
    rows = features.meta.get("rows") or list(range(len(features)))
    inputs = [r["value"] for r in features.rows] if features.encode is not None else None
    return torch.cat(logits), torch.cat(labels), inputs, rows, handler


def _names(session) -> list[str]:
    config = session.model.config
    return [str(config.id2label.get(i, i)) for i in range(config.num_labels)]


def confusion(session, data, batch_size: int = 64, columns: dict[str, str] | None = None) -> Confusion:
    """The confusion matrix of ``session`` on labelled ``data`` (see the module docstring)."""
    from sklearn.metrics import confusion_matrix

    logits, labels, _, _, _ = _pass(session, data, batch_size, columns)
    names = _names(session)
    predicted = logits.argmax(-1).numpy()
    matrix = confusion_matrix(labels.numpy(), predicted, labels=list(range(len(names))))
    return Confusion(names, matrix.tolist(), float((predicted == labels.numpy()).mean()))


def top_losses(session, data, k: int = 9, batch_size: int = 64, columns: dict[str, str] | None = None,
               text_column: str | None = None) -> TopLosses:
    """The ``k`` examples of ``data`` with the highest loss, with their input, true and predicted label."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise TaskError(f"k is how many examples to show, a positive integer; got {k!r}.")
    logits, labels, inputs, rows, handler = _pass(session, data, batch_size, columns)
    if inputs is None:  # text: the table's text column
        table = table_of(handler, data)
        column = text_column or handler.column(table, "text", dict(columns or {}))
        inputs = table[column].tolist()
        rows = list(range(len(inputs)))
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    probs = logits.softmax(-1)
    names = _names(session)
    order = np.argsort(-losses.numpy(), kind="stable")[:k]
    items = [TopLoss(int(rows[i]), inputs[i], names[int(labels[i])], names[int(probs[i].argmax())],
                     float(probs[i].max()), float(probs[i, labels[i]]), float(losses[i]),
                     thumbnail(inputs[i]) if handler.modality == "image" else None) for i in order]
    return TopLosses(items, handler.modality)

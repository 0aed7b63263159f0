"""The activation memory of one training forward, measured on the session's model (for ``s.summary``'s estimate of
models whose sizes no transformer config gives: CNNs, timm and torchvision classifiers)."""

from __future__ import annotations

from nbtune.core.model.memory import saved_activation_bytes
from nbtune.core.tasks.handlers import handler_for


def measured_activations(session, size: int | None) -> tuple[int, int, str] | None:
    """(bytes autograd keeps for backward in one training forward of one example, 1, what the example is) for the
    modalities that can build one (``Modality.measure_batch``), else None. The model runs as training runs it
    (dropout on, frozen BatchNorm in eval mode); every module's mode is put back as it was."""
    if session.task is None or session.is_meta:
        return None
    batch = session.modality.measure_batch(session, size)
    if batch is None:
        return None
    handler = handler_for(session)
    modes = [(module, module.training) for module in session.model.modules()]
    session.train_mode()
    try:
        saved = saved_activation_bytes(session.model, lambda: handler.forward(session.model, batch[0]))
    finally:
        for module, training in modes:
            module.training = training
    return saved, 1, batch[1]

"""The Accelerator a process trains with, and the runtime evaluation uses.

accelerate keeps one state per process (mixed precision, the process group), so the Accelerator is made once per
process here; each session's ``TrainingState.accelerator`` holds the one it trained with.
"""

from __future__ import annotations

import torch

from nbtune.core.common.errors import TrainConfigError
from nbtune.core.model.precision import resolve_precision

_ACCELERATOR = None


def get_accelerator(precision: str, model=None):
    """This process's Accelerator and the precision a run of ``model`` uses (resolved: "no", "bf16" or "fp16").

    One Accelerator per process: accelerate fixes mixed precision for the life of the kernel. CPU bf16 is the
    exception, applied per run (``precision.autocast``), so the Accelerator of a CPU process stays fp32 for it.
    """
    global _ACCELERATOR
    from accelerate import Accelerator, DataLoaderConfiguration

    cuda = torch.cuda.is_available()
    if precision == "auto" and _ACCELERATOR is not None and (cuda or _ACCELERATOR.mixed_precision != "no"):
        return _ACCELERATOR, _ACCELERATOR.mixed_precision
    resolved = resolve_precision(precision, model=model)
    process_precision = "no" if not cuda and resolved == "bf16" else resolved
    if _ACCELERATOR is None:
        # split_batches: with N processes each takes 1/N of every batch, so the global batch is the recipe's
        # batch_size whatever N is. cpu=True on CPU-only machines lets a gloo launch (torchrun,
        # notebook_launcher) be seen as multi-process.
        # device_placement=False: nbtune moves the model and each micro-batch itself, so batch statistics (token
        # counts) are read on the host without a device sync.
        _ACCELERATOR = Accelerator(mixed_precision=process_precision, cpu=not cuda, device_placement=False,
                                   dataloader_config=DataLoaderConfiguration(split_batches=True))
    elif _ACCELERATOR.mixed_precision != process_precision:
        raise TrainConfigError(
            f"This kernel already trains with precision={_ACCELERATOR.mixed_precision!r} (accelerate fixes it per "
            f"process). Restart the kernel to use {precision!r}, or pass precision='auto'."
        )
    return _ACCELERATOR, resolved


class _LocalRuntime:
    """Evaluation without an Accelerator: creating one fixes accelerate's process state, which would stop a
    later multi-process launch from the notebook (``train(processes=N)``)."""

    def __init__(self, device):
        self.device = device

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()


def current_accelerator():
    """This process's Accelerator, or None before any training (accelerate keeps one state per process)."""
    return _ACCELERATOR


def eval_runtime(session):
    """The Accelerator this session trained with (its device and autocast), else the model's own device."""
    accelerator = session.training.accelerator
    device = next(session.model.parameters()).device
    if accelerator is not None and accelerator.device.type == device.type:
        return accelerator
    return _LocalRuntime(device)  # never trained, or moved to another device since


def eval_precision(session, runtime) -> str:
    """The precision evaluation uses on ``runtime``: the session's last run's, else what ``"auto"`` gives its model
    on this device (CPU bf16 where it pays; a GPU without a training run evaluates in the model's dtype)."""
    if runtime is session.training.accelerator:
        return session.training.precision
    return resolve_precision("auto", runtime.device, session.model) if runtime.device.type == "cpu" else "no"

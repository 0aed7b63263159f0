"""The learning-rate range test (Smith 2015, as in fastai's ``lr_find``): train briefly while the rate grows
exponentially, watch the loss, suggest the rate where it fell fastest. A heuristic, said as such.

The test trains the session's current trainable set (head only, adapters or everything) with an optimizer of its
own, then puts back every weight, buffer (BatchNorm statistics), the random state and the model's mode: the session,
its optimizer and its history are exactly as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import cycle

import torch

from nbtune.core.common.errors import TrainingError, few
from nbtune.core.data.batching import make_loader, to_device
from nbtune.core.model.precision import autocast
from nbtune.core.objectives import objective_for
from nbtune.core.tasks.handlers import handler_for
from nbtune.core.training import checkpoint as ckpt_mod
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.evaluation import prepare_data
from nbtune.core.training.optim import build_optimizer, param_groups
from nbtune.core.training.runtime import get_accelerator
from nbtune.render.lr_find import lr_find_html, lr_find_text

CAVEAT = ("a heuristic: the steepest fall of the loss during a short run with a growing rate. It is usually a good "
          "starting point, not a guarantee; confirm with a short run.")


@dataclass
class LRFindResult:
    """Rates tried, raw and smoothed losses, the suggested rate and why the test stopped."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    stopped: str
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return lr_find_text(self)

    def _repr_html_(self) -> str:
        return lr_find_html(self)


def _suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The rate at the steepest descent of the smoothed loss against log(rate), between the first tenth of the test
    (the average is still settling there) and the loss's minimum, the slope taken over a few points so that one
    noisy batch cannot decide. None when the loss never fell by 1%."""
    n = len(smoothed)
    if n < 8:
        return None
    low = min(range(n), key=smoothed.__getitem__)
    start = max(2, n // 10)
    if low <= start or smoothed[start] - smoothed[low] < 0.01 * abs(smoothed[start]):
        return None
    logs = [math.log10(lr) for lr in lrs]
    w = max(1, n // 20)
    slopes = {i: (smoothed[i + w] - smoothed[i - w]) / (logs[i + w] - logs[i - w]) for i in range(start + w, low - w + 1)}
    return lrs[min(slopes, key=slopes.get)] if slopes else lrs[low] / 10


def lr_find(session, data, *, start_lr: float = 1e-7, end_lr: float = 1.0, steps: int = 100, batch_size: int = 16,
            max_length: int | None = 256, smoothing: float = 0.9, diverge: float = 4.0, seed: int | None = None,
            columns: dict[str, str] | None = None) -> LRFindResult:
    """Run the range test on ``data`` for ``session``'s trainable set; see the module docstring."""
    session.require_weights("lr_find")
    if not 0 < start_lr < end_lr:
        raise TrainingError(f"lr_find needs 0 < start_lr < end_lr; got {start_lr} and {end_lr}.")
    if steps < 5:
        raise TrainingError(f"lr_find needs steps >= 5 to see a trend; got {steps}.")
    model = session.model
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not trainable:
        raise TrainingError("lr_find: every parameter is frozen. Unfreeze something or attach an adapter first.")
    cfg = TrainConfig(lr=start_lr, batch_size=batch_size, max_length=max_length, seed=session.seed if seed is None
                      else seed, columns=dict(columns or {}), max_grad_norm=None)
    handler = handler_for(session)
    objective = objective_for(session, handler, cfg)
    features = prepare_data(session, handler, data, cfg, None, "lr_find")
    config = getattr(session.model, "config", None)
    if features.label_names and config is not None and len(features.label_names) != config.num_labels:
        raise TrainingError(f"The data has {len(features.label_names)} classes and the head {config.num_labels} "
                            "outputs; lr_find measures the model as it is, so give it the data's head first: "
                            f"s.reset_head(labels=[{few(list(features.label_names.values()), 10)}]) or load with "
                            "labels=[...].")
    accelerator, precision = get_accelerator("auto", model)

    # What the test changes, kept to be put back exactly.
    weights = {n: p.detach().clone() for n, p in trainable.items()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    rng = ckpt_mod.rng_state()
    was_training = model.training
    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    groups = param_groups(model, cfg)
    optimizer = build_optimizer(groups)  # the training loop's AdamW, a separate instance
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: factor ** i)
    optimizer = accelerator.prepare(optimizer)
    loader = make_loader(features, handler.collator(session, cfg), batch_size, cfg.seed, shuffle=True,
                         group_by_length=False)
    lrs, losses, smoothed = [], [], []
    stopped, best, average = f"reached end_lr={end_lr:g}", float("inf"), 0.0
    try:
        session.train_mode()
        for i, batch in zip(range(steps), cycle(loader)):
            lr = optimizer.param_groups[0]["lr"]
            batch = to_device(batch, accelerator.device)
            with autocast(accelerator, precision):
                loss = objective(model, batch, handler).loss
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                stopped = f"the loss became non-finite at lr {lr:.2g}"
                break
            average = smoothing * average + (1 - smoothing) * value
            debiased = average / (1 - smoothing ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(debiased)
            best = min(best, debiased)
            if debiased > diverge * best and i > 5:
                stopped = f"the loss passed {diverge:g}x its minimum at lr {lr:.2g}"
                break
    finally:
        with torch.no_grad():
            for name, param in trainable.items():
                param.copy_(weights[name])
            for name, buffer in model.named_buffers():
                if name in buffers:
                    buffer.copy_(buffers[name])
        for param in trainable.values():
            param.grad = None
        ckpt_mod.set_rng_state(rng)
        if was_training:
            session.train_mode()
        else:
            session.eval_mode()
        accelerator.free_memory()  # release accelerate's reference to the test's optimizer
    suggestion = _suggest(lrs, smoothed)
    notes = [CAVEAT] + ([] if suggestion else ["no clear descent: try more steps, a lower start_lr or more data"])
    return LRFindResult(lrs, losses, smoothed, suggestion, stopped, notes)

"""The learning-rate schedules: linear decay, half-cosine or constant after a linear warmup from zero.

The multipliers are transformers' (``get_linear_schedule_with_warmup`` and its siblings), step for step, on torch's
``LambdaLR``, so checkpoints hold the same scheduler state as before. They are written here rather than taken from
``transformers.optimization`` because that module imports ``transformers.trainer_utils``, which imports peft and,
through it, bitsandbytes: 1.5 s of the first ``train()`` of a full fine-tune on a 2-core CPU (7% of a 4,000-sentence
SST-2 epoch), for three lines of arithmetic. tests/test_schedules.py holds them equal to transformers' own.
"""

from __future__ import annotations

import functools
import math


def _warmup(step: int, warmup_steps: int) -> float:
    return float(step) / float(max(1, warmup_steps))


def linear(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Up from 0 over the warmup, then straight down to 0 at the last step."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))


def cosine(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Up from 0 over the warmup, then down to 0 along half a cosine."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def constant(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Up from 0 over the warmup, then the full rate."""
    return _warmup(step, warmup_steps) if step < warmup_steps else 1.0


SCHEDULE_FACTORS = {"linear": linear, "cosine": cosine, "constant": constant}


def build_schedule(optimizer, name: str, warmup_steps: int, total_steps: int):
    """A ``LambdaLR`` over ``optimizer`` following schedule ``name`` (a key of ``SCHEDULE_FACTORS``)."""
    from torch.optim.lr_scheduler import LambdaLR

    factor = functools.partial(SCHEDULE_FACTORS[name], warmup_steps=warmup_steps, total_steps=total_steps)
    return LambdaLR(optimizer, factor)

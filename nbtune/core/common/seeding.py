"""One seed for everything random in a session: head initialisation at load, re-initialised heads, adapter weights
and training (data order, dropout).

Each random initialisation runs under ``seeded``: the torch generator is seeded for the block and put back after,
so the user's own random state is left as it was and the same script gives the same weights in any process.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

DEFAULT_SEED = 42


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's generators seeded with ``seed``; restore them afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def derived_seed(seed: int, count: int) -> int:
    """The seed of a session's ``count``-th random initialisation: distinct per initialisation, fixed per script."""
    return (seed * 1_000_003 + count) % (2**63)

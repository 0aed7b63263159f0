"""Steps that happen entirely or not at all: deferred interrupts and a rollback snapshot.

A training step changes the weights (``optimizer.step``), then the bookkeeping that describes them: scheduler,
position in the data, step counter, RNG state, history row. An interrupt or an exception between the two would
leave weights one update ahead of the history, and a resumed run would drift from the uninterrupted one. Two
pieces, used together by the loop, keep the session on a completed step whatever arrives when:

- ``deferred_interrupts()`` (``nbtune.core.common.interrupts``): a SIGINT (Interrupt Kernel, Ctrl-C) that arrives inside the block is held and
  raised as soon as the block ends, so update and bookkeeping are one unit for signals. The same block guards
  every other place where nbtune changes several pieces of session state together.
- ``StepGuard``: a copy of the committed state (trainable tensors, optimizer, scheduler, loss scaler, position,
  history length, callback state) taken before updates. An exception inside the unit, a non-finite loss or
  non-finite weights restore it. The copy is taken every step where that costs at most ``budget`` of the step
  time and always below ``always_bytes`` (adapters, heads, small models), every few steps otherwise, and not at all
  beyond ``SNAPSHOT_MAX_BYTES``; the message says which step the session went back to.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch


def _copy_tree(value: Any, device: torch.device | str | None, into: Any = None) -> Any:
    """A deep copy of a state dict whose tensors are cloned (onto ``device`` when given). Tensors of ``into`` (an
    earlier copy of the same structure) are written over instead of allocated anew: five times faster on a CPU,
    where fresh memory costs a page fault per page."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        target = value.device if device is None else torch.device(device)
        if (isinstance(into, torch.Tensor) and into.shape == value.shape and into.dtype == value.dtype
                and into.device == target):
            return into.copy_(value)
        return value.to(device, copy=True) if device is not None else value.clone()
    if isinstance(value, dict):
        into = into if isinstance(into, dict) else {}
        return {k: _copy_tree(v, device, into.get(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        into = into if isinstance(into, (list, tuple)) and len(into) == len(value) else [None] * len(value)
        return type(value)(_copy_tree(v, device, old) for v, old in zip(value, into))
    return copy.deepcopy(value)


@dataclass
class Snapshot:
    """The committed state of a run at the end of ``step``."""

    step: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    scaler: dict[str, Any] | None
    position: dict[str, Any]
    history_rows: int
    callbacks: dict[str, Any]


def _tensors(*trees: Any):
    """Every tensor inside nested dicts and lists."""
    for tree in trees:
        if isinstance(tree, torch.Tensor):
            yield tree
        elif isinstance(tree, dict):
            yield from _tensors(*tree.values())
        elif isinstance(tree, (list, tuple)):
            yield from _tensors(*tree)


def state_bytes(params: list[torch.Tensor], optimizer) -> int:
    """Bytes of the trainable tensors plus the optimizer's state for them (Adam: two more per parameter, once
    built; counted before the first step too, so the decision does not change after it)."""
    weights = sum(p.numel() * p.element_size() for p in params)
    return weights * 3 if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) else weights * 2


# Beyond this much trainable state (weights + optimizer), no copy is kept in memory; a non-finite loss then goes back
# to the run's newest checkpoint, when it writes any.
SNAPSHOT_MAX_BYTES = 2 << 30


class StepGuard:
    """Takes and restores snapshots of a run's committed state (see the module docstring).

    ``read`` returns the parts of the run that change with a step and ``write`` puts them back; the loop supplies
    both, so this class knows nothing about its internals.
    """

    def __init__(self, named_params: dict[str, torch.nn.Parameter], optimizer, scheduler, scaler,
                 read: Callable[[], tuple[int, dict[str, Any], int, dict[str, Any]]],
                 write: Callable[[Snapshot], None], *, budget: float = 0.005,
                 always_bytes: int = 32 << 20):
        self.params, self.optimizer, self.scheduler, self.scaler = named_params, optimizer, scheduler, scaler
        self.read, self.write, self.budget, self.always_bytes = read, write, budget, always_bytes
        size = state_bytes(list(named_params.values()), optimizer)
        self.enabled = size <= SNAPSHOT_MAX_BYTES
        self.size = size
        # Large state on an accelerator is copied to host memory: doubling it on the device could itself run out.
        on_accelerator = any(p.device.type != "cpu" for p in named_params.values())
        self.device = "cpu" if on_accelerator and size > (256 << 20) else None
        self.snapshot: Snapshot | None = None
        self.copy_seconds = 0.0
        self.step_seconds = 0.0
        self.since = 0  # steps since the snapshot

    def due(self) -> bool:
        """Whether to copy before this update: always at first, then as often as the time budget allows."""
        if not self.enabled:
            return False
        if self.snapshot is None or self.size <= self.always_bytes:
            return True
        return self.since * self.step_seconds * self.budget >= self.copy_seconds

    def before_update(self, step_seconds: float) -> None:
        """Called with the committed state in place, right before the optimizer changes the weights."""
        self.step_seconds = step_seconds if not self.step_seconds else 0.8 * self.step_seconds + 0.2 * step_seconds
        if not self.due():
            self.since += 1
            return
        started = time.perf_counter()
        step, position, history_rows, callbacks = self.read()
        # the new copy overwrites the old one's tensors: until it is complete there is no snapshot, never a mixed one
        previous, self.snapshot = self.snapshot, None
        self.snapshot = Snapshot(
            step=step,
            weights={n: _copy_tree(p, self.device, previous.weights.get(n) if previous else None)
                     for n, p in self.params.items()},
            optimizer=_copy_tree(self.optimizer.state_dict(), self.device, previous.optimizer if previous else None),
            scheduler=copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None,
            scaler=copy.deepcopy(self.scaler.state_dict()) if self.scaler is not None else None,
            position=copy.deepcopy(position),
            history_rows=history_rows,
            callbacks=copy.deepcopy(callbacks),
        )
        copied = sum(t.numel() * t.element_size() for t in _tensors(self.snapshot.weights, self.snapshot.optimizer))
        # The first copies hold no optimizer moments yet (Adam makes them at its first step): scaled to the full
        # state, so the copies of later steps keep to the budget too.
        self.copy_seconds = (time.perf_counter() - started) * max(1.0, self.size / max(copied, 1))
        self.since = 1

    def restore(self) -> int | None:
        """Put the snapshot back; the step it holds, or None when there is none."""
        snap = self.snapshot
        if snap is None:
            return None
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(snap.weights[name])
        # load_state_dict keeps the tensors it is given: hand it copies, so the snapshot stays intact.
        self.optimizer.load_state_dict(_copy_tree(snap.optimizer, None))
        if self.scheduler is not None and snap.scheduler is not None:
            self.scheduler.load_state_dict(copy.deepcopy(snap.scheduler))
        if self.scaler is not None and snap.scaler is not None:
            self.scaler.load_state_dict(copy.deepcopy(snap.scaler))
        self.write(snap)
        self.since = 0
        return snap.step

    def weights_finite(self) -> bool:
        """Whether every trainable tensor is finite (one host sync)."""
        params = [p.detach() for p in self.params.values()]
        if not params:
            return True
        norms = torch.stack([torch.linalg.vector_norm(p.float()).to(params[0].device) for p in params])
        return bool(torch.isfinite(norms).all())


def non_finite_message(what: str, value: float, step: int, kept: int | None, lr: float, how: str) -> str:
    """Why the run stopped on a non-finite value, what the weights are now, and what to change."""
    if kept is None:
        state = (f"no snapshot could be restored ({how}), so the weights are those of step {step - 1}; reload the "
                 "session or resume from a checkpoint before training on")
    else:
        state = f"the session went back to step {kept}, the last weights known to give a finite loss ({how})"
    value_text = "nan" if isinstance(value, float) and math.isnan(value) else str(value)
    return (f"The {what} became {value_text} at step {step}: the update was not applied and {state}. Likely causes: "
            f"a learning rate too high for this model (now {lr:.2e}; try 10x lower or add warmup), fp16 overflow "
            "(use bf16 or precision='no'), bad inputs (empty texts, labels out of range), or no gradient clipping "
            "(max_grad_norm=1.0).")

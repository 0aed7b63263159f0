"""Will a training step fit on this machine, and if not, what change makes it fit.

The verdict compares the memory estimate (``memory.estimate_memory``) with the detected device: a CUDA GPU's total
memory, or on a CPU the memory available now plus what the model already occupies. When the step does not fit, the
estimate is recomputed for the changes a user can make, cheapest first (gradient checkpointing, a smaller
micro-batch with gradient accumulation, 4-bit weights with an adapter, shorter sequences), and the first that fits
is named with its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nbtune.core.model.memory import MemoryEstimate, estimate_memory
from nbtune.core.model.quantize import gradient_checkpointing_on, quantization_of
from nbtune.render.format import human_bytes

HEADROOM = 0.9  # the CUDA context, the allocator's fragmentation and the framework's own buffers take the rest


@dataclass
class FitVerdict:
    """``fits`` on ``device`` (``capacity`` usable bytes) for the estimated ``needed`` bytes; ``change`` is the
    concrete change that would make a step fit (None when it fits, or when nothing tried does)."""

    device: str
    capacity: int
    needed: int
    fits: bool
    change: str | None = None
    change_needs: int | None = None
    tried: list[str] = field(default_factory=list)

    @property
    def detail(self) -> str:
        """Everything after the verdict word: the device, the numbers and the change."""
        head = f"on {self.device}: needs about {human_bytes(self.needed)} of {human_bytes(self.capacity)} usable"
        if self.fits:
            return head
        if self.change:
            return f"{head}. To fit: {self.change} (about {human_bytes(self.change_needs)})"
        if self.tried:
            return f"{head}, even with {', '.join(self.tried)}. Use a smaller model, or a GPU with more memory"
        return head

    @property
    def text(self) -> str:
        return f"{'fits' if self.fits else 'does not fit'} {self.detail}"


def device_capacity(device: torch.device | None = None, weights: int = 0) -> tuple[str, int]:
    """(description, usable bytes) of the device training would use."""
    if device is None:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)", int(props.total_memory * HEADROOM)
    import psutil

    available = psutil.virtual_memory().available + weights  # the model's weights are already in memory
    return f"this CPU's memory ({available / 2**30:.0f} GiB free)", int(available * HEADROOM)


def fit_verdict(model: nn.Module, memory: MemoryEstimate, precision: str = "auto",
                device: torch.device | None = None, capacity: int | None = None) -> FitVerdict:
    """The verdict for ``memory`` (an estimate of ``model``'s step); ``capacity`` overrides the detected one."""
    if capacity is None:
        name, usable = device_capacity(device, memory.weights)
    else:
        name, usable = f"a device of {human_bytes(capacity)}", int(capacity * HEADROOM)
    verdict = FitVerdict(name, usable, memory.total, memory.total <= usable)
    if verdict.fits or memory.activations is None:
        return verdict
    batch, seq = memory.batch_size, memory.seq_len
    checkpointing = gradient_checkpointing_on(model)
    quantized = quantization_of(model) is not None

    # a smaller training batch brings evaluation's down too, as the run sizes it (a multiple of batch_size)
    eval_ratio = memory.eval_batch_size / batch if memory.eval_batch_size else 0

    def estimate(b: int, s: int, gc: bool, q: str | None, e: int | None = None) -> int:
        e = e or (max(1, round(b * eval_ratio)) if eval_ratio else None)
        return estimate_memory(model, b, s, precision=precision, gradient_checkpointing=gc, quantize=q,
                               eval_batch_size=e, device=memory.device, generate_batch=memory.generate_batch,
                               chunked_logits=memory.chunked_logits).total

    if memory.training <= usable and memory.eval_batch_size:  # only evaluation does not fit: a smaller eval batch
        smaller = memory.eval_batch_size
        while smaller > 1:
            smaller //= 2
            needs = estimate(batch, seq, checkpointing, None, smaller)
            if needs <= usable:
                verdict.change, verdict.change_needs = f"eval_batch_size={smaller}", needs
                return verdict
    options: list[tuple[str, int, int, bool, str | None]] = []  # (change, batch, seq, checkpointing, quantize)
    if not checkpointing:
        options.append(("gradient checkpointing (s.gradient_checkpointing = True)", batch, seq, True, None))
    smaller = batch
    while smaller > 1:
        smaller //= 2
        accum = -(-batch // smaller)
        options.append((f"{'gradient checkpointing and ' if not checkpointing else ''}batch_size={smaller} with "
                        f"grad_accum={accum} (the same effective batch)", smaller, seq, True, None))
    if not quantized:
        options.append(("load with quantize='4bit' and gradient_checkpointing=True, and train a LoRA adapter "
                        f"(batch_size={batch})", batch, seq, True, "4bit"))
        options.append(("load with quantize='4bit' and gradient_checkpointing=True, LoRA, batch_size=1 with "
                        f"grad_accum={batch}", 1, seq, True, "4bit"))
    short = seq
    while short > 64:
        short //= 2
        options.append((f"max_length={short}, batch_size=1 with grad_accum={batch}, gradient checkpointing"
                        + ("" if quantized else ", 4-bit weights and LoRA"), 1, short, True,
                        None if quantized else "4bit"))
    for change, b, s, gc, q in options:
        needs = estimate(b, s, gc, q)
        if needs <= usable:
            verdict.change, verdict.change_needs = change, needs
            return verdict
    verdict.tried = ["gradient checkpointing", "batch_size=1"] + ([] if quantized else ["4-bit weights"]) + \
        [f"max_length={short}"]
    return verdict

"""``low_host_memory=True``: glibc hands large freed blocks back to the system instead of keeping them in its heap.

On a CPU, what a training step allocates and frees (activations, gradients, the loss's chunks) is served by
glibc's malloc. Its dynamic mmap threshold grows with the blocks freed, up to 32 MiB, so after the first steps even
large tensors come from a heap that fragments and never shrinks: the process holds far more than its tensors. A
fixed threshold maps every block of that size and up on its own and unmaps it when freed. Measured by
bench/chunked_sft.py (SmolLM2-135M LoRA SFT, 4 x 1,024 tokens, 2 cores): peak RSS 3,666 MiB and 19.9 s a step with
glibc's default; 2,129 MiB and 24.7 s with 8 MiB (4 MiB: 1,941 MiB, 25.9 s; 16 MiB: 3,487 MiB, 21.8 s). Fresh pages
cost a fault each, hence the time: a lever for a run that would not fit, not a default. The setting also turns off
the dynamic threshold for the rest of the process (glibc has no call to turn it back on).
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD_BYTES = 8 << 20  # the largest that kept the bench's peak under 0.6x the Trainer's
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _glibc():
    """The C library when it is glibc (``mallopt`` means something else, or nothing, elsewhere), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_heap_growth(threshold: int = MMAP_THRESHOLD_BYTES) -> str:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; a sentence for the run's messages that
    says what was done, or why nothing was."""
    libc = _glibc()
    if libc is None:
        return ("low_host_memory=True has no effect here: it tunes glibc's allocator, and this process does not "
                "use glibc (Linux only)")
    if libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold)) != 1:
        return "low_host_memory=True had no effect: glibc refused the mmap threshold"
    return (f"low_host_memory: freed blocks of {threshold >> 20} MiB and up go back to the system (lower peak "
            "memory, about a quarter more time a step on a CPU); this lasts until the kernel restarts")

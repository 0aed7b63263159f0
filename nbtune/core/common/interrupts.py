"""Several changes to a session's state as one unit for Ctrl-C and Interrupt Kernel.

Used wherever nbtune changes more than one piece of state that must agree: a training step's update and its
bookkeeping, the set-up of a run, the swap of a saved folder into place.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class deferred_interrupts:  # noqa: N801 - used like a function: ``with deferred_interrupts():``
    """Hold SIGINT for the duration of the block and deliver it when the block ends.

    Only the main thread receives signals in Python, so elsewhere this does nothing. A signal held while the block
    raises is dropped: the exception already unwinds the same code the interrupt would have.
    """

    def __enter__(self) -> "deferred_interrupts":
        self.pending: tuple[int, Any] | None = None
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending = (signum, frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.active:
            return
        signal.signal(signal.SIGINT, self.previous)
        if self.pending is None or exc_type is not None:
            return
        if callable(self.previous):
            self.previous(*self.pending)  # the kernel's or Python's handler: raises KeyboardInterrupt
        elif self.previous != signal.SIG_IGN:
            raise KeyboardInterrupt

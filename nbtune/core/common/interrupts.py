"""Several changes to a session's state as one unit for Ctrl-C and Interrupt Kernel.

Used wherever nbtune changes more than one piece of state that must agree: a training step's update and its
bookkeeping, the set-up of a run, the swap of a saved folder into place.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

# Held by ``deferred_interrupts``: SIGINT always (Interrupt Kernel, Ctrl-C); SIGTERM when Python code handles it
# (``install_stop_signals`` does, and its second arrival raises as SIGINT does); a default SIGTERM still ends the
# process at once.
_HELD = (signal.SIGINT, signal.SIGTERM)


class deferred_interrupts:  # noqa: N801 - used like a function: ``with deferred_interrupts():``
    """Hold SIGINT (and a handled SIGTERM) for the duration of the block and deliver it when the block ends.

    Only the main thread receives signals in Python, so elsewhere this does nothing. A signal held while the block
    raises is dropped: the exception already unwinds the same code the interrupt would have.
    """

    def __enter__(self) -> "deferred_interrupts":
        self.pending: list[tuple[int, Any]] = []
        self.active = threading.current_thread() is threading.main_thread()
        self.previous: dict[int, Any] = {}
        if self.active:
            for number in _HELD:
                handler = signal.getsignal(number)
                if number == signal.SIGINT or callable(handler):
                    self.previous[number] = handler
                    signal.signal(number, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending.append((signum, frame))

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.active:
            return
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        if exc_type is not None:
            return
        for signum, frame in self.pending:
            handler = self.previous[signum]
            if callable(handler):
                handler(signum, frame)  # the kernel's, Python's or ours: may raise KeyboardInterrupt
            elif handler != signal.SIG_IGN:
                raise KeyboardInterrupt


class _StopSignals:
    """SIGINT and SIGTERM as a request to stop a headless run cleanly (``nbtune run``, ``nbtune launch``, CI).

    The first signal asks the training loop to stop at the end of the step under way: every process stops at the
    same step and a checkpoint is written, so ``--resume`` continues exactly. A second one raises
    KeyboardInterrupt at once (the loop still ends on a completed step). Installed explicitly, so a process started
    in the background by a shell, which inherits an ignored SIGINT, is stopped by it all the same.
    """

    def __init__(self) -> None:
        self.installed = False
        self.received: int | None = None

    def install(self) -> None:
        for number in _HELD:
            signal.signal(number, self._handle)
        self.installed, self.received = True, None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        print(f"nbtune: {self.name} received: stopping at the end of this step with a checkpoint (send it again to "
              "stop at once)", file=sys.stderr, flush=True)

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received is not None else None


stop_signals = _StopSignals()  # one per process: signals are process-wide


def install_stop_signals() -> None:
    """Make SIGINT and SIGTERM stop this process's training cleanly (see ``_StopSignals``); for headless runs."""
    stop_signals.install()

"""What kind of frontend we are in, and how a widget click reaches Python while a cell is busy.

A kernel normally reads widget messages only between cells, so a naive Stop button cannot work. Two ways
around it, chosen by what the kernel supports:

- ipykernel >= 7 (kernel subshells, JEP 91): nbtune asks its own kernel for a subshell over the control channel
  (the ordinary ``create_subshell_request``) and routes the button's comm to it; the subshell's thread handles the
  click while the main thread trains.
- older ipykernel (Colab, Kaggle): jupyter-ui-poll processes pending messages between training steps.
"""

from __future__ import annotations

import contextlib
from typing import Callable

_SUBSHELLS: dict[int, str] = {}  # id(kernel) -> the subshell nbtune created in it


def kernel_shell():
    """The IPython shell of a Jupyter kernel (widgets possible), or None (terminal, plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def _own_subshell(kernel) -> str:
    """A subshell of this kernel (created once), requested over the kernel's own control channel."""
    if id(kernel) in _SUBSHELLS:
        return _SUBSHELLS[id(kernel)]
    from ipykernel import get_connection_file
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=get_connection_file())
    client.load_connection_file()
    client.start_channels(shell=False, iopub=False, stdin=False, hb=False, control=True)
    try:
        client.control_channel.send(client.session.msg("create_subshell_request", {}))
        reply = client.control_channel.get_msg(timeout=10)
    finally:
        client.stop_channels()
    subshell = reply["content"]["subshell_id"]
    _SUBSHELLS[id(kernel)] = subshell
    return subshell


@contextlib.contextmanager
def clicks_while_busy(widgets) -> Callable[[], None]:
    """Make clicks on ``widgets`` reach Python during a long cell; yields ``pump()`` to call between steps."""
    shell = kernel_shell()
    if shell is None:
        yield lambda: None
        return
    kernel = shell.kernel
    if getattr(kernel, "_supports_kernel_subshells", False):
        try:
            subshell = _own_subshell(kernel)
            for widget in widgets:
                # ipykernel routes a comm's incoming messages to the subshell named here (ipykernel/comm/comm.py).
                widget.comm._reply_subshell_id = subshell
            yield lambda: None
            return
        except Exception:  # no control channel reachable: fall back to polling
            pass
    if hasattr(kernel, "do_one_iteration"):
        from jupyter_ui_poll import ui_events

        with ui_events() as poll:
            yield lambda: poll(10)
        return
    yield lambda: None  # neither: Interrupt Kernel still stops training cleanly

"""Dependencies' own progress bars and deprecation chatter kept out of the user's output while nbtune works.

A notebook keeps whatever a cell wrote: transformers' "Writing model shards" bar, GGUF de-quantisation drawn
with plain tqdm (a widget that a saved notebook shows stuck at 0%), a FutureWarning about transformers'
internals on every save. None of it is the user's business, so loading, saving and dataset downloads run inside
``quiet_dependencies()``:

- transformers, datasets and huggingface_hub are switched off through their own documented switches
  (verbosity, ``disable_progress_bar(s)``) and switched back afterwards;
- FutureWarning and DeprecationWarning raised inside the block are dropped (they concern the libraries' internals;
  nbtune's own messages are errors and notes, not warnings);
- what is drawn with plain tqdm goes to stderr (held back here) or, in a notebook, to a display: the notebook layer
  registers a guard for that (``register_output_guard``), as it registers its dashboard, so the core imports no
  IPython.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from typing import Callable, ContextManager

_GUARDS: list[Callable[[], ContextManager]] = []


class _DropMessage(logging.Filter):
    """A logging filter dropping records whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


# bitsandbytes logs, on its first 4-bit use on an AVX512-BF16 CPU, that an optional faster kernel from the hub could
# not be loaded (it needs the `kernels` package and network); the slower built-in kernel is used and nothing is
# wrong, so the line is not shown to the user.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_DropMessage("Failed to load CPU gemm_4bit_forward"))


def register_output_guard(factory: Callable[[], ContextManager]) -> None:
    """``factory()`` gives a context manager that holds back rich output drawn inside it (a notebook layer's)."""
    if factory not in _GUARDS:
        _GUARDS.append(factory)


@contextlib.contextmanager
def _transformers_quiet():
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _bars_off(module):
    """``module``'s progress bars off (datasets, huggingface_hub: the same three switches), then as they were."""
    was_disabled = module.are_progress_bars_disabled()
    module.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            module.enable_progress_bars()


@contextlib.contextmanager
def quiet_dependencies():
    """Run the block with the dependencies' progress bars, logs and deprecation warnings held back."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_transformers_quiet())
        from huggingface_hub import utils as hub_utils

        stack.enter_context(_bars_off(hub_utils))
        if "datasets" in sys.modules:  # only switched when loaded: importing it costs a second
            stack.enter_context(_bars_off(sys.modules["datasets"]))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for guard in _GUARDS:
            stack.enter_context(guard())
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))  # plain tqdm bars in a console
        yield


def quietly(func):
    """Decorator: ``func`` runs inside ``quiet_dependencies()`` (loading, saving)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with quiet_dependencies():
            return func(*args, **kwargs)

    return wrapper

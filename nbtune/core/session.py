"""``Session``: one model with its tokenizer and task, and everything a notebook user does to it.

The magics and widgets call these public methods and nothing else, so a freeze clicked in a widget,
typed as ``%nbtune freeze`` or called from Python goes through the same code.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from . import freeze as freeze_mod
from .errors import MetaModelError
from .heads import HeadChange, reset_head as _reset_head
from .inspect import LayerTree
from .loading import ModelSource
from .memory import estimate_memory
from .params import count_params
from .summary import Summary


def _tracks_running_stats(module: nn.Module) -> bool:
    return bool(getattr(module, "track_running_stats", False)) and getattr(module, "running_mean", None) is not None


class Session:
    """A model being fine-tuned: its tokenizer, task, freeze state, and (later) adapters and history.

    Build one with :func:`nbtune.load`. Methods that change the model validate their input first, so an
    error leaves the session exactly as it was.
    """

    def __init__(self, model: nn.Module, tokenizer: Any = None, task: str | None = None,
                 source: ModelSource | None = None, notes: list[str] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.source = source or ModelSource("module")
        self.notes: list[str] = list(notes or [])
        # Freeze calls in order, so they can be re-applied after an adapter is attached (peft resets
        # requires_grad when it wraps a model).
        self.freeze_log: list[tuple[str, tuple[str, ...]]] = []
        self._listeners: list[Callable[[str], None]] = []

    # -- identity ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        loc = self.source.location
        if self.source.gguf_file:
            return self.source.gguf_file
        if loc and self.source.kind == "hub":
            return loc
        if loc:
            parts = loc.rstrip("/").split("/")
            # A folder called "model" says little; keep its parent's name too.
            return "/".join(parts[-2:]) if parts[-1] in ("model", "models", "checkpoint", "final") else parts[-1]
        return type(self.model).__name__

    @property
    def is_meta(self) -> bool:
        """True when the weights live on the meta device (``load(..., weights=False)``)."""
        return any(p.is_meta for p in self.model.parameters())

    def require_weights(self, action: str) -> None:
        """Raise a clear error if ``action`` needs real weights and the model has none."""
        if self.is_meta:
            raise MetaModelError(
                f"Cannot {action}: this model was built from its config without weights (weights=False). "
                "Load it again with nbtune.load(..., weights=True) to train or run it."
            )

    def __repr__(self) -> str:
        c = count_params(self.model)
        return (f"<nbtune.Session {self.name} task={self.task} {type(self.model).__name__}: "
                f"{c.trainable:,} of {c.total:,} params trainable>")

    # -- change notification (widgets stay in sync with code) ----------------------------------
    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(kind)`` after every change ('freeze', 'head', ...). Used by the widgets."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _changed(self, kind: str) -> None:
        for callback in list(self._listeners):
            callback(kind)

    # -- inspection ------------------------------------------------------------------------------
    def layers(self, filter: str | None = None, depth: int | None = None, fold: bool | None = None) -> LayerTree:
        """The module tree: names, classes, shapes, counts, trainable, dtype, device.

        Args:
            filter: substring or glob of module names; matching modules are shown with their ancestors.
            depth: deepest level to show (1 = top-level children).
            fold: fold runs of identical blocks (default: on unless filtering).
        """
        return LayerTree(self.model, filter=filter, depth=depth, fold=fold, title=type(self.model).__name__)

    def select(self, *selectors: str) -> freeze_mod.Selection:
        """Preview what selectors match (parameter names and matched modules) without changing anything."""
        return freeze_mod.select(self.model, *selectors)

    def summary(self, batch_size: int = 8, seq_len: int = 128) -> Summary:
        """Total and trainable parameters (overall and per top-level module) and estimated training memory."""
        counts = count_params(self.model)
        memory = estimate_memory(self.model, batch_size=batch_size, seq_len=seq_len)
        return Summary(self.name, self.task, counts, memory, notes=list(self.notes))

    # -- freezing ------------------------------------------------------------------------------
    def freeze(self, *selectors: str) -> freeze_mod.FreezeReport:
        """Stop training the parameters the selectors cover (``"all"``, ``"embeddings"``, ``"encoder.layer.[0-3]"``...)."""
        report = freeze_mod.set_trainable(self.model, selectors, trainable=False)
        self.freeze_log.append(("freeze", tuple(selectors)))
        self._changed("freeze")
        return report

    def unfreeze(self, *selectors: str) -> freeze_mod.FreezeReport:
        """Train the parameters the selectors cover (``"head"``, ``"qkv"``, ``"top:2"``, ``"bitfit"``...)."""
        report = freeze_mod.set_trainable(self.model, selectors, trainable=True)
        self.freeze_log.append(("unfreeze", tuple(selectors)))
        self._changed("freeze")
        return report

    def trainable_parameters(self) -> list[str]:
        """Canonical names of the parameters that will be trained."""
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    # -- head ----------------------------------------------------------------------------------
    def reset_head(self, num_labels: int | None = None, labels: list[str] | None = None) -> HeadChange:
        """Replace the task head with a fresh one (``num_labels`` wide), or re-initialise it in place."""
        change = _reset_head(self.model, self.task, num_labels=num_labels, labels=labels)
        self._changed("head")
        return change

    # -- modes ---------------------------------------------------------------------------------
    def train_mode(self) -> nn.Module:
        """Put the model in training mode, keeping frozen normalisation layers in eval mode.

        A BatchNorm whose parameters are frozen must not keep updating its running statistics, or the
        "frozen" layer still drifts. The training loop uses this switch.
        """
        self.model.train()
        modules = dict(self.model.named_modules())
        for name, module in modules.items():
            if not _tracks_running_stats(module):
                continue
            params = list(module.parameters())
            if not params:  # affine=False: follow the enclosing module
                parent = modules.get(name.rpartition(".")[0], self.model)
                params = list(parent.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
        return self.model

    def eval_mode(self) -> nn.Module:
        """Put the whole model in eval mode (dropout off, normalisation statistics fixed)."""
        return self.model.eval()

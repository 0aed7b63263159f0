"""fastai's ``fine_tune`` schedule for any task: train the new head with the body frozen, then unfreeze and train
everything with discriminative rates (the body at a fraction of the head's rate).

fastai: ``fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100)`` freezes the body, trains
``freeze_epochs`` at ``base_lr``, halves ``base_lr``, unfreezes, and trains ``epochs`` with the rates spread from
``base_lr / lr_mult`` (first layers) to ``base_lr`` (the head). Here the head gets ``head_lr = base_lr / 2`` and the
body ``lr = base_lr / 2 / lr_mult``; ``layer_decay`` (a training setting) spreads the body's rate further.
``lr="find"`` runs the learning-rate range test before each phase and takes its suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbtune.core.common.changes import Change
from nbtune.core.common.errors import AdapterError, HeadError, TrainConfigError
from nbtune.core.model.architecture import head_module_names, is_peft_model
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.result import RunResult

SCHEDULED = ("epochs", "lr", "head_lr", "resume")  # what the schedule itself sets
RUN_OPTIONS = ("task", "callbacks", "progress", "log", "processes")  # train()'s own arguments, not settings


@dataclass
class FineTuneResult:
    """The two phases of ``fine_tune``: the frozen-body run and the unfrozen one (None when not reached), and the
    rates each used."""

    frozen: RunResult | None
    unfrozen: RunResult | None
    rates: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def last(self) -> RunResult | None:
        return self.unfrozen or self.frozen

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.last.metrics) if self.last else {}

    def __repr__(self) -> str:
        lines = []
        for phase, run in (("frozen body", self.frozen), ("unfrozen", self.unfrozen)):
            if run is None:
                continue
            rates = ", ".join(f"{k} {v:.2e}" for k, v in self.rates.get(phase, {}).items())
            shown = ", ".join(f"{k} {v:.4f}" for k, v in run.metrics.items() if isinstance(v, float))
            lines.append(f"{phase}: {run.steps} steps ({rates}), {run.reason}" + (f"; {shown}" if shown else ""))
        return "\n".join(lines) or "fine_tune: nothing ran"


def _check(session, epochs, freeze_epochs, lr, lr_mult, settings) -> None:
    for name, value, low in (("epochs", epochs, 1), ("freeze_epochs", freeze_epochs, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TrainConfigError(f"{name} must be an integer >= {low}; got {value!r}.")
    if lr != "find" and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise TrainConfigError(f"lr is the head's base rate (> 0) or 'find' (the range test picks it); got {lr!r}.")
    if isinstance(lr_mult, bool) or not isinstance(lr_mult, (int, float)) or lr_mult < 1:
        raise TrainConfigError(f"lr_mult (head rate / body rate) must be >= 1; got {lr_mult!r}.")
    set_here = sorted(set(settings) & set(SCHEDULED))
    if set_here:
        raise TrainConfigError(f"fine_tune sets {', '.join(set_here)} itself; use epochs=/freeze_epochs=/lr=/lr_mult=, "
                               "or call train() for a schedule of your own.")
    # every other setting checked before anything changes
    TrainConfig.from_kwargs(**{k: v for k, v in settings.items() if k not in RUN_OPTIONS})
    if is_peft_model(session.model):
        raise AdapterError("fine_tune trains the model's own body; this session has an adapter, which trains "
                           "instead of it. Call s.train(...) to train the adapter, or fine_tune a session without one.")
    if not head_module_names(session.model):
        raise HeadError("fine_tune trains the head first, and no task head was found in this model; freeze and "
                        "unfreeze by name (s.freeze('all'); s.unfreeze('fc')) and call s.train(...) instead.")


def fine_tune(session, data: Any, eval: Any = None, *, epochs: int = 1, freeze_epochs: int = 1,
              lr: float | str = 2e-3, lr_mult: float = 100, **settings: Any) -> FineTuneResult:
    """See the module docstring. The freeze state is the schedule's (head only, then everything); bad settings or
    data raise before the first phase changes it."""
    _check(session, epochs, freeze_epochs, lr, lr_mult, settings)
    flags = {n: p.requires_grad for n, p in session.model.named_parameters()}
    log = list(session.freeze_log)
    frozen = None
    rows = len(session.history.rows)
    rates: dict[str, dict[str, float]] = {}
    base = lr
    if freeze_epochs:
        session.freeze("all")
        session.unfreeze("head")
        try:
            base = _found_rate(session, data) if lr == "find" else lr
            rates["frozen body"] = {"head": base}
            frozen = session.train(data, eval, epochs=freeze_epochs, lr=base, **settings)
        except Exception:
            if len(session.history.rows) == rows:
                _restore(session, flags, log)  # nothing trained yet (bad data, say): the session is as it was
            raise
        if frozen.outcome.value != "completed":
            return FineTuneResult(frozen, None, rates)
    session.unfreeze("all")
    if lr == "find":
        head = _found_rate(session, data)
    else:
        head = base / 2 if freeze_epochs else base
    rates["unfrozen"] = {"head": head, "body": head / lr_mult}
    unfrozen = session.train(data, eval, epochs=epochs, lr=head / lr_mult, head_lr=head, **settings)
    return FineTuneResult(frozen, unfrozen, rates)


def _found_rate(session, data) -> float:
    """``lr_find``'s suggestion for the current trainable set, or an error when it has none."""
    rate = session.lr_find(data).suggestion
    if rate is None:
        raise TrainConfigError("lr='find' found no rate where the loss fell; give lr= a number.")
    return rate


def _restore(session, flags: dict[str, bool], log: list) -> None:
    for name, parameter in session.model.named_parameters():
        parameter.requires_grad_(flags.get(name, parameter.requires_grad))
    session.freeze_log[:] = log
    session._changed(Change.FREEZE)  # views of the trainable set (the layer widget) redraw

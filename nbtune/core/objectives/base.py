"""What an objective is: the loss that trains a task's model, apart from the task (which says what the model
predicts and how predictions are scored).

An objective file subclasses ``Objective``, gives it a name and a settings dataclass, and registers it with
``@register_objective``. The training loop, evaluation and ``lr_find`` call only these hooks:

- ``prepare(model, batch, task)``: a no-grad phase before the loss (a reference model's log-probabilities for DPO;
  generation and rewards for RL). Runs under ``torch.no_grad()``; returns whatever ``loss`` needs.
- ``loss(model, batch, task, prepared)``: an ``ObjectiveOutput``: the loss to back-propagate, the step metrics
  (0-d tensors, read with the loss once per step) and the model outputs the task's evaluation collects.
- ``collect`` / ``metrics``: the objective's own evaluation metrics (DPO's reward accuracy), beside the task's.

What its batches need is declared, not coded into the loop: ``splittable = False`` for a loss computed across the
examples of a batch (in-batch negatives, group-normalised advantages), which then is never cut into micro-batches
(out-of-memory halving refuses instead); ``batch_needs`` for constraints a sampler must keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from nbtune.core.common.errors import TrainConfigError


@dataclass
class NoSettings:
    """The settings of an objective that has none."""


@dataclass
class ObjectiveOutput:
    """One forward pass under an objective: the loss, the step metrics, and the model outputs (for evaluation)."""

    loss: torch.Tensor | None
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: Any = None


@dataclass(frozen=True)
class BatchNeeds:
    """Constraints on the batches an objective trains on (read by the batch sampler and the loop).

    ``distinct``: a column whose values must not repeat within a batch (in-batch negatives would be positives);
    ``grouped``: a column whose equal values stay in one batch (a prompt's group of sampled answers)."""

    distinct: str | None = None
    grouped: str | None = None


class Objective:
    """Base class for one objective (see the module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings_class: ClassVar[type] = NoSettings
    # tasks it can train (registered task names); empty: any task whose model returns its own loss
    tasks: ClassVar[tuple[str, ...]] = ()
    splittable: ClassVar[bool] = True  # the loss of a batch is the example-weighted mean of its parts' losses
    batch_needs: ClassVar[BatchNeeds] = BatchNeeds()

    def __init__(self, settings: Any = None):
        self.settings = settings if settings is not None else self.settings_class()

    # -- settings ---------------------------------------------------------------------------------------------
    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in fields(cls.settings_class)]

    @classmethod
    def make_settings(cls, values: dict[str, Any]):
        """The settings dataclass from ``values``; an unknown name or a bad value is a TrainConfigError."""
        unknown = sorted(set(values) - set(cls.setting_names()))
        if unknown:
            known = ", ".join(cls.setting_names()) or "none"
            raise TrainConfigError(f"{', '.join(map(repr, unknown))} is not a setting of the {cls.name} objective "
                                   f"(its settings: {known}).")
        return cls.settings_class(**values)

    # -- the run ----------------------------------------------------------------------------------------------
    def start(self, session) -> list[str]:
        """Called once per training run, after every check and before the run's folder records the session: set
        up what the objective keeps on the model (DPO's reference adapter). Returns notes for the run's header."""
        return []

    # -- the step ---------------------------------------------------------------------------------------------
    def prepare(self, model, batch: dict[str, Any], task) -> Any:
        """The no-grad phase before the loss; nothing by default."""
        return None

    def loss(self, model, batch: dict[str, Any], task, prepared: Any) -> ObjectiveOutput:
        raise NotImplementedError

    def __call__(self, model, batch: dict[str, Any], task) -> ObjectiveOutput:
        """``prepare`` without gradients, then ``loss``: one forward pass as training and evaluation run it."""
        with torch.no_grad():
            prepared = self.prepare(model, batch, task)
        return self.loss(model, batch, task, prepared)

    # -- evaluation -------------------------------------------------------------------------------------------
    def collect(self, output: ObjectiveOutput, batch: dict[str, Any], store: dict[str, list]) -> None:
        """Keep what ``metrics`` needs from one evaluation batch; nothing by default."""

    def metrics(self, store: dict[str, list]) -> dict[str, float]:
        return {}

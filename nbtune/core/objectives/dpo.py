"""DPO (Rafailov et al. 2023): preference pairs against a reference model.

The reference: with an adapter attached, the same model with its adapters disabled (no second copy in memory);
without one, a frozen copy of the model as it was when this objective first trained it (kept by the objective's
instance on the session). loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))), the
rewards being beta * (log pi - log ref): TRL's "sigmoid" DPO loss, checked against it in the tests.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nbtune.core.model.architecture import is_peft_model
from nbtune.core.objectives.base import Objective, ObjectiveOutput
from nbtune.core.objectives.preference_metrics import PreferenceMetrics, check_beta
from nbtune.core.objectives.registry import register_objective


@dataclass
class DPOSettings:
    beta: float = 0.1  # how far from the reference the policy may move (smaller: further)

    def __post_init__(self) -> None:
        check_beta(self.beta, "0.1")


@register_objective
class DPO(PreferenceMetrics, Objective):
    name = "dpo"
    description = "preference pairs against a reference model (the adapter disabled, or a frozen copy)"
    settings_class = DPOSettings
    tasks = ("preference",)

    def __init__(self, settings=None):
        super().__init__(settings)
        self._reference = None  # the frozen copy, when the model has no adapter to disable
        self._reference_of = None  # a weak reference to the model the copy was made from

    def reference_for(self, model) -> torch.nn.Module:
        """The frozen copy of ``model`` made at its first DPO step (a new model object gets a new copy)."""
        if self._reference is None or self._reference_of is None or self._reference_of() is not model:
            self._reference = copy.deepcopy(model).eval().requires_grad_(False)
            self._reference_of = weakref.ref(model)
        return self._reference

    def use_reference(self, model, reference: torch.nn.Module) -> None:
        """Use ``reference`` (e.g. another trainer's) as ``model``'s frozen reference."""
        self._reference, self._reference_of = reference, weakref.ref(model)

    @property
    def made_a_copy(self) -> bool:
        return self._reference is not None

    def prepare(self, model, batch, task):
        """The answers' log-probabilities under the reference (no gradients)."""
        if is_peft_model(model):
            with model.disable_adapter():
                chosen, rejected, _, _ = task.logps(model, batch)
        else:
            chosen, rejected, _, _ = task.logps(self.reference_for(model), batch)
        return chosen, rejected

    def loss(self, model, batch, task, prepared) -> ObjectiveOutput:
        ref_chosen, ref_rejected = prepared
        chosen, rejected, _, _ = task.logps(model, batch)
        beta = self.settings.beta
        chosen_rewards, rejected_rewards = beta * (chosen - ref_chosen), beta * (rejected - ref_rejected)
        margin = chosen_rewards - rejected_rewards
        loss = -F.logsigmoid(margin).mean()
        return self.rewards_output(loss, chosen_rewards.detach(), rejected_rewards.detach())

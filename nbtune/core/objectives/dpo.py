"""DPO (Rafailov et al. 2023): preference pairs against a reference model.

The reference is the policy as it was when DPO started, as TRL users expect after SFT. With an adapter attached it
is a frozen snapshot of the active adapter taken when DPO first trains it (adapter ``<name>_reference``: the
adapter's size, not a second model; TRL's ``ref_adapter_name``), so a LoRA trained by SFT and then by DPO is held
to the SFT model, not to the base. The snapshot lives on the model, so save(), a run's setup folder and resume keep
it; delete it (``s.delete_adapter("default_reference")``) to take a new one at the next DPO run. Without an
adapter, a frozen copy of the model as it was when this objective first trained it (kept by the objective's
instance on the session). loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))), the
rewards being beta * (log pi - log ref): TRL's "sigmoid" DPO loss, checked against it in the tests.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nbtune.core.adapters import manager as adapter_manager
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
    description = "preference pairs against a reference: the policy as DPO started (an adapter snapshot, or a frozen copy)"
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

    @staticmethod
    def reference_adapter(model) -> str:
        return f"{model.active_adapter}_reference"

    def start(self, session) -> list[str]:
        """Snapshot the active adapter as the reference the first time DPO trains it."""
        model = session.model
        if not is_peft_model(model):
            return ["DPO reference: a frozen copy of the model, made at DPO's first step on it and kept for later runs"]
        reference = self.reference_adapter(model)
        if reference in model.peft_config:
            return [f"DPO reference: adapter {reference!r}, the policy as DPO first started (delete it to take a "
                    "new one)"]
        adapter_manager.snapshot(model, model.active_adapter, reference)
        return [f"DPO reference: adapter {model.active_adapter!r} as this DPO run starts, kept frozen as "
                f"{reference!r} (TRL's ref_adapter_name: after SFT, the SFT model)"]

    def prepare(self, model, batch, task):
        """The answers' log-probabilities under the reference (no gradients)."""
        if is_peft_model(model):
            reference = self.reference_adapter(model)
            if reference in model.peft_config:
                with adapter_manager.running(model, reference):
                    chosen, rejected, _, _ = task.logps(model, batch)
            else:  # evaluate() before any DPO run: the policy as DPO would start from it is the model itself
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

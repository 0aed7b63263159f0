"""The task's own loss: what the model computes from its labels (cross-entropy, MSE, token NLL...), plus the task's
step metrics. The default objective of every task that does not name another."""

from __future__ import annotations

from nbtune.core.objectives.base import Objective, ObjectiveOutput
from nbtune.core.objectives.registry import register_objective


@register_objective
class Supervised(Objective):
    name = "supervised"
    description = "the task's own loss on its labels (what the model computes from them)"

    def loss(self, model, batch, task, prepared) -> ObjectiveOutput:
        outputs = task.forward(model, batch)
        return ObjectiveOutput(outputs.loss, task.step_metrics(outputs, batch), outputs)

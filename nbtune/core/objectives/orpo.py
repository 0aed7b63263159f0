"""ORPO (Hong et al. 2024): preference pairs without a reference model.

loss = the chosen answer's mean token NLL + beta * -log sigmoid(log odds ratio of the two answers' mean token
probabilities); the "rewards" reported are beta times the answers' mean token log-probabilities (as TRL logs them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nbtune.core.objectives.base import Objective, ObjectiveOutput
from nbtune.core.objectives.preference_metrics import PreferenceMetrics, check_beta
from nbtune.core.objectives.registry import register_objective


@dataclass
class ORPOSettings:
    beta: float = 0.1  # the odds-ratio term's weight (the paper's lambda; TRL calls it beta too)

    def __post_init__(self) -> None:
        check_beta(self.beta, "0.1-0.25")


@register_objective
class ORPO(PreferenceMetrics, Objective):
    name = "orpo"
    description = "preference pairs without a reference: NLL on the chosen answer plus an odds-ratio term"
    settings_class = ORPOSettings
    tasks = ("preference",)

    def loss(self, model, batch, task, prepared) -> ObjectiveOutput:
        chosen, rejected, n_chosen, n_rejected = task.logps(model, batch)
        mean_chosen, mean_rejected = chosen / n_chosen.clamp(min=1), rejected / n_rejected.clamp(min=1)
        # log odds(p) = log p - log(1 - p), with p the mean token probability of an answer
        log_odds = (mean_chosen - mean_rejected) - (torch.log1p(-torch.exp(mean_chosen))
                                                    - torch.log1p(-torch.exp(mean_rejected)))
        beta = self.settings.beta
        loss = (-mean_chosen + beta * -F.logsigmoid(log_odds)).mean()
        return self.rewards_output(loss, beta * mean_chosen.detach(), beta * mean_rejected.detach())

"""What every preference objective reports: reward margin, reward accuracy (the share of pairs whose chosen answer
gets the higher reward), and the chosen and rejected rewards, per step and over an evaluation."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from nbtune.core.common.errors import TrainConfigError
from nbtune.core.objectives.base import ObjectiveOutput


def check_beta(beta, typical: str) -> None:
    """A preference objective's beta: a positive number."""
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta <= 0:
        raise TrainConfigError(f"beta must be > 0; got {beta!r}. Typical: {typical}.")


class PreferenceMetrics:
    """Mixin for objectives on chosen/rejected pairs (not an objective itself: the registry skips this file)."""

    @staticmethod
    def rewards_output(loss: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> ObjectiveOutput:
        margin = chosen - rejected
        metrics = {"reward_margin": margin.mean(), "reward_accuracy": (margin > 0).float().mean(),
                   "reward_chosen": chosen.mean(), "reward_rejected": rejected.mean()}
        outputs = SimpleNamespace(loss=loss, margin=margin, chosen_rewards=chosen, rejected_rewards=rejected)
        return ObjectiveOutput(loss, metrics, outputs)

    def collect(self, output: ObjectiveOutput, batch, store) -> None:
        out = output.outputs
        store.setdefault("margins", []).extend(out.margin.float().cpu().tolist())
        store.setdefault("chosen", []).extend(out.chosen_rewards.float().cpu().tolist())
        store.setdefault("rejected", []).extend(out.rejected_rewards.float().cpu().tolist())

    def metrics(self, store) -> dict[str, float]:
        margins = store.get("margins", [])
        n = len(margins) or 1
        return {"reward_accuracy": sum(m > 0 for m in margins) / n, "reward_margin": sum(margins) / n,
                "reward_chosen": sum(store.get("chosen", [])) / n, "reward_rejected": sum(store.get("rejected", [])) / n}

"""nbtune's learning-rate schedules against transformers' own, step for step, and through a checkpoint."""

import pytest
import torch
from transformers import get_scheduler

from nbtune.core.training.schedules import SCHEDULE_FACTORS, build_schedule

TRANSFORMERS_NAME = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.3)


@pytest.mark.parametrize("name", list(SCHEDULE_FACTORS))
@pytest.mark.parametrize("warmup,total", [(0, 25), (4, 25), (0, 1), (3, 3)])
def test_schedule_rates_equal_transformers(name, warmup, total):
    ours_opt, theirs_opt = _optimizer(), _optimizer()
    ours = build_schedule(ours_opt, name, warmup, total)
    theirs = get_scheduler(TRANSFORMERS_NAME[name], theirs_opt, num_warmup_steps=warmup, num_training_steps=total)
    for _ in range(total + 2):
        assert ours.get_last_lr() == theirs.get_last_lr()
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()


def test_schedule_state_round_trips_into_a_transformers_scheduler():
    """Checkpoints written before and after the switch load into each other: the same LambdaLR state."""
    ours_opt, theirs_opt = _optimizer(), _optimizer()
    ours = build_schedule(ours_opt, "linear", 2, 10)
    for _ in range(5):
        ours_opt.step()
        ours.step()
    theirs = get_scheduler("linear", theirs_opt, num_warmup_steps=2, num_training_steps=10)
    theirs.load_state_dict(ours.state_dict())
    theirs_opt.load_state_dict(ours_opt.state_dict())
    assert set(ours.state_dict()) == set(theirs.state_dict())
    for _ in range(4):
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr()

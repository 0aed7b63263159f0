"""What a session keeps between ``train`` calls, and where a run is: enough to continue it exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from nbtune.core.training.callbacks import History


@dataclass
class RunPosition:
    """Where a run is: enough to continue it exactly (in memory after an interrupt, or from a checkpoint)."""

    config: dict[str, Any]
    total_steps: int
    steps_per_epoch: int
    run_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    splits: int = 1  # micro-batch splits after out-of-memory halvings
    rng: dict[str, Any] | None = None
    finished: bool = False
    callbacks: dict[str, Any] = field(default_factory=dict)  # state of callbacks that keep some (early stopping)
    trainable: list[str] = field(default_factory=list)  # names the run trains: resuming needs the same set


@dataclass
class TrainingState:
    """What a session keeps between ``train`` calls."""

    history: History = field(default_factory=History)
    global_step: int = 0
    optimizer: torch.optim.Optimizer | None = None
    optimizer_signature: tuple | None = None
    scheduler: Any = None
    position: RunPosition | None = None
    runs: int = 0
    best: dict[str, Any] | None = None  # early stopping: {"step", "metrics", "weights"} of the best evaluation
    run_folder: Any = None  # the folder of the run in progress (nbtune.core.training.run_folder)
    accelerator: Any = None  # the Accelerator this session trained with (accelerate's state is per process)
    precision: str = "no"  # the resolved precision of its last run ("no", "bf16", "fp16"): evaluation uses it too
    # objective instances by name (nbtune.core.objectives.objective_for): what one keeps between runs stays, such
    # as DPO's frozen reference copy
    objectives: dict[str, Any] = field(default_factory=dict)

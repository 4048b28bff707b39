"""Strength schedules: functions of training progress, never epoch branches, kept where checkpoints see them.

A strategy whose strength ramps describes it with a `Schedule` (the one place a schedule name is
checked) and keeps its current value in a `ScheduleState` among the modules it owns: the base
strategy advances it at the start of every training batch, and a checkpoint restores it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning.pytorch as L
import torch
from torch import Tensor, nn

from avdisentangle.errors import UserError

SCHEDULES = ("constant", "dann")


def training_progress(trainer: L.Trainer) -> float:
    """global_step / estimated total steps in [0, 1]; 1 when the run length is unbounded."""
    total = trainer.estimated_stepping_batches
    return min(1.0, trainer.global_step / total) if math.isfinite(total) and total > 0 else 1.0


def dann_ramp(progress: float, gamma: float = 10.0) -> float:
    """Ganin et al.'s ramp 2/(1+exp(-gamma p)) - 1: near 0 early, while the tasks are still being learnt."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


@dataclass(frozen=True)
class Schedule:
    """`peak` times a multiplier in [0, 1]: 1 throughout ("constant") or the DANN ramp ("dann", steepness `gamma`)."""

    name: str
    gamma: float = 10.0
    peak: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.name!r}")

    def at(self, progress: float) -> float:
        """The scheduled strength at this progress through training."""
        return self.peak * (1.0 if self.name == "constant" else dann_ramp(progress, self.gamma))


class ScheduleState(nn.Module):
    """A schedule's current value as a buffer, so checkpoints restore it exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0))

    def advance(self, schedule: Schedule, trainer: L.Trainer) -> Tensor:
        """Set the value that `schedule` gives at the trainer's progress; returns the buffer."""
        self.scale.fill_(schedule.at(training_progress(trainer)))
        return self.scale

"""Strength schedules shared by strategies: functions of training progress, never epoch branches."""

from __future__ import annotations

import math

import lightning.pytorch as L

from avdisentangle.errors import UserError

SCHEDULES = ("constant", "dann")


def training_progress(trainer: L.Trainer) -> float:
    """global_step / estimated total steps in [0, 1]; 1 when the run length is unbounded."""
    total = trainer.estimated_stepping_batches
    return min(1.0, trainer.global_step / total) if math.isfinite(total) and total > 0 else 1.0


def dann_ramp(progress: float, gamma: float = 10.0) -> float:
    """Ganin et al.'s ramp 2/(1+exp(-gamma p)) - 1: near 0 early, while the tasks are still being learnt."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def scheduled(schedule: str, progress: float, gamma: float = 10.0) -> float:
    """The multiplier in [0, 1] that a schedule gives at this progress."""
    if schedule not in SCHEDULES:
        raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    return 1.0 if schedule == "constant" else dann_ramp(progress, gamma)

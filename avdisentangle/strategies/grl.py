"""Gradient reversal (DANN-style): a speaker adversary on z_emotion whose gradient the encoder gets negated.

The adversary minimises its speaker cross-entropy; between it and z_emotion sits a layer that is
the identity forward and multiplies the gradient by -lambda backward, so the same loss term trains
the encoder to maximise it, i.e. to remove speaker information from z_emotion.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor, nn

from avdisentangle.strategies.adversarial import AdversarialStrategy
from avdisentangle.strategies.adversary import speaker_adversary
from avdisentangle.strategies.schedules import Schedule, ScheduleState


class GradientReversal(torch.autograd.Function):
    """Identity forward, gradient times -lambda backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambda_: Tensor) -> Tensor:
        ctx.save_for_backward(lambda_)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (lambda_,) = ctx.saved_tensors
        return -lambda_.to(grad.dtype) * grad, None


def grad_reverse(x: Tensor, lambda_: Tensor | float) -> Tensor:
    """Apply gradient reversal with strength lambda_."""
    return GradientReversal.apply(x, torch.as_tensor(lambda_, device=x.device))


class SpeakerAdversary(nn.Module):
    """MLP speaker classifier behind a gradient reversal layer; lambda is its schedule's checkpointed value."""

    def __init__(self, in_dim: int, hidden_dim: int, num_speakers: int) -> None:
        super().__init__()
        self.mlp = speaker_adversary(in_dim, hidden_dim, num_speakers)
        self.schedule_state = ScheduleState()

    def forward(self, z: Tensor) -> Tensor:
        return self.mlp(grad_reverse(z, self.schedule_state.scale))


class GradientReversalStrategy(AdversarialStrategy):
    """Adversarial speaker removal from z_emotion via gradient reversal. Term: `adversary_ce`.

    schedule="constant" keeps lambda = lambda_max; "dann" ramps it with training progress
    p = global_step / estimated_stepping_batches (p = 1 when training length is unbounded).
    adversary_steps > 1: the adversary's extra steps per batch (`strategies/adversarial.py`).
    """

    name = "grl"

    def __init__(
        self,
        weight: float = 0.3,
        lambda_max: float = 1.0,
        schedule: str = "dann",
        gamma: float = 10.0,
        hidden_dim: int = 64,
        adversary_lr_scale: float = 10.0,
        adversary_steps: int = 1,
    ) -> None:
        super().__init__(weight, hidden_dim, adversary_lr_scale, adversary_steps)
        self.schedule = Schedule(schedule, gamma, peak=lambda_max)

    def build_modules(self, pl_module: L.LightningModule) -> nn.Module:
        return SpeakerAdversary(pl_module.hparams.emotion_dim, self.hidden_dim, pl_module.hparams.num_speakers)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Advance lambda (the base class does) and log it."""
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        pl_module.log(f"train/{self.name}/lambda", self.schedule_state().scale.clone(), on_step=True, on_epoch=False)

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        self.train_adversary(outputs["z_emotion"], batch["speaker"])
        return {"adversary_ce": self.weight * self.adversary_ce(outputs["z_emotion"], batch["speaker"])}

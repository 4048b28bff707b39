"""CLUB (Cheng et al. 2020): minimise a variational upper bound on the mutual information between z_emotion
and the speaker.

A network q(s|z) learns the speaker from z_emotion by maximum likelihood, and the encoder lowers the
contrastive log-ratio
    I_CLUB = mean_i log q(s_i|z_i) - mean_{i,j} log q(s_j|z_i),
which bounds I(z; s) from above while q is close to p(s|z). Two terms share one optimiser step without
leaking into each other, as the confusion adversary's do:
- `q_nll`: q's speaker cross-entropy on DETACHED z_emotion (weight 1: it trains q only);
- `club`: the estimate through z with q's parameters DETACHED (times weight and the DANN ramp): it trains
  the encoder only.
Two choices:
- with `conditional` (the default) the negatives s_j are drawn within the emotion of row i (the batch's
  speakers of that emotion), which estimates I(z; s | emotion): when some speakers mostly act some
  emotions, speaker and emotion are entangled, and the unconditional estimate is positive for a z that
  holds the emotion and nothing else about the speaker, so it would punish emotion itself. q reads z
  alone, not the emotion: z_emotion carries the emotion, so q(s|z) already knows it.
- with `floor` (the default) the encoder's term is max(I_CLUB, 0). Below zero, the frozen q gives the true
  speaker less probability than the emotion's other speakers: the encoder has moved clips to look like
  other speakers, which is identity information still (a fresh probe reads it), not its removal. An
  unfloored estimate rewards exactly that, so nothing below zero is rewarded; q then catches up.
  It happens in training: on the benchmark at weight 1 (seed 0, floored) the raw training estimate
  averaged below zero over epochs 6-12 (to -0.14 nats) while q's validation cross-entropy rose to 7.0
  nats, far above uniform's log 24 = 3.2: the encoder outran q and pointed clips at other speakers.
The raw estimate is logged as `<split>/club/estimate`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from avdisentangle.strategies.adversary import speaker_adversary
from avdisentangle.strategies.base import DisentanglementStrategy
from avdisentangle.strategies.schedules import Schedule, ScheduleState


def club_estimate(log_q: Tensor, speakers: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """mean_i log q(s_i|z_i) - mean_i sum_k p_batch(k | group of i) log q(k|z_i): CLUB with the negatives
    of row i drawn from the batch's speakers in its group (one group for all rows: plain CLUB)."""
    positive = log_q.gather(1, speakers[:, None]).mean()
    onehot = F.one_hot(speakers, log_q.shape[1]).to(log_q.dtype)
    counts = torch.zeros(num_groups, log_q.shape[1], dtype=log_q.dtype, device=log_q.device)
    counts.index_add_(0, groups, onehot)
    shares = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    negative = (log_q * shares[groups]).sum(dim=1).mean()
    return positive - negative


class SpeakerPosterior(nn.Module):
    """q(s|z): standardised z_emotion -> MLP -> speaker logits, beside the schedule's current value."""

    def __init__(self, in_dim: int, hidden_dim: int, num_speakers: int, num_groups: int) -> None:
        super().__init__()
        self.q = speaker_adversary(in_dim, hidden_dim, num_speakers)
        self.schedule_state = ScheduleState()
        self.num_groups = num_groups


class CLUBStrategy(DisentanglementStrategy):
    """CLUB upper bound on I(z_emotion; speaker), conditional on emotion and floored at 0 by default
    (see the module docstring). Terms: `q_nll` (weight 1: it only trains q) and `club` (times weight)."""

    name = "club"

    def __init__(
        self,
        weight: float = 1.0,
        conditional: bool = True,
        floor: bool = True,
        hidden_dim: int = 128,
        q_lr_scale: float = 10.0,
        schedule: str = "dann",
        gamma: float = 10.0,
    ) -> None:
        super().__init__(weight, lr_scale=q_lr_scale)  # q must keep up with the encoder, as an adversary must
        self.conditional = conditional
        self.floor = floor
        self.hidden_dim = hidden_dim
        self.schedule = Schedule(schedule, gamma)
        self.last_estimate: Tensor | None = None

    def build_modules(self, pl_module: L.LightningModule) -> nn.Module:
        hparams = pl_module.hparams
        groups = hparams.num_emotions if self.conditional else 1
        return SpeakerPosterior(hparams.emotion_dim, self.hidden_dim, hparams.num_speakers, groups)

    def estimate(self, z_emotion: Tensor, batch: dict[str, Any]) -> Tensor:
        """The raw CLUB estimate through z_emotion, with q's parameters frozen."""
        frozen = {name: param.detach() for name, param in self.module.q.named_parameters()}
        log_q = functional_call(self.module.q, frozen, (z_emotion,)).float().log_softmax(dim=1)
        groups = batch["emotion"] if self.conditional else torch.zeros_like(batch["speaker"])
        return club_estimate(log_q, batch["speaker"], groups, self.module.num_groups)

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        z_emotion = outputs["z_emotion"]
        q_nll = F.cross_entropy(self.module.q(z_emotion.detach()).float(), batch["speaker"])
        estimate = self.estimate(z_emotion, batch)
        self.last_estimate = estimate.detach()
        penalty = estimate.clamp(min=0) if self.floor else estimate
        return {"q_nll": q_nll, "club": self.weight * self.module.schedule_state.scale * penalty}

    def log_estimate(self, pl_module: L.LightningModule, split: str, batch: dict[str, Any]) -> None:
        """Log the last step's raw (unfloored, unweighted) estimate: below 0 means q is being fooled."""
        if self.last_estimate is not None:
            size = batch["speaker"].shape[0]
            log = {"on_step": False, "on_epoch": True, "sync_dist": True, "batch_size": size}
            pl_module.log(f"{split}/{self.name}/estimate", self.last_estimate, **log)
            self.last_estimate = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.log_estimate(pl_module, "train", batch)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.log_estimate(pl_module, "val", batch)

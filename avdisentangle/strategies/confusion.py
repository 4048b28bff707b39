"""Domain confusion (Tzeng et al. 2015): make a speaker adversary on z_emotion maximally uncertain.

Two terms share one optimiser step without leaking into each other:
- `adversary_ce`: the adversary learns to predict the speaker from a DETACHED z_emotion, so this
  term trains the adversary only;
- `confusion`: cross-entropy between the adversary's prediction and the uniform distribution,
  computed with DETACHED adversary parameters, so this term trains the encoder only.
Unlike gradient reversal the encoder's target is "no information" (uniform), not "wrong speaker",
which is bounded and does not reward encodings that point confidently at another speaker.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from avdisentangle.strategies.adversary import speaker_adversary
from avdisentangle.strategies.base import DisentanglementStrategy


class ConfusionStrategy(DisentanglementStrategy):
    """Speaker adversary on detached z_emotion + encoder loss towards its uniform prediction.

    Terms: `adversary_ce` (weight 1: it only trains the adversary) and `confusion` (times weight).
    """

    name = "confusion"

    def __init__(self, weight: float = 0.3, hidden_dim: int = 64, adversary_lr_scale: float = 10.0) -> None:
        super().__init__(weight, lr_scale=adversary_lr_scale)
        self.hidden_dim = hidden_dim

    def build_modules(self, pl_module: L.LightningModule) -> nn.Module:
        hparams = pl_module.hparams
        return speaker_adversary(hparams.emotion_dim, self.hidden_dim, hparams.num_speakers)

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        z_emotion = outputs["z_emotion"]
        adversary_ce = F.cross_entropy(self.module(z_emotion.detach()).float(), batch["speaker"])
        frozen = {name: p.detach() for name, p in self.module.named_parameters()}
        log_probs = functional_call(self.module, frozen, (z_emotion,)).float().log_softmax(dim=1)
        confusion = -log_probs.mean(dim=1).mean()
        return {"adversary_ce": adversary_ce, "confusion": self.weight * confusion}

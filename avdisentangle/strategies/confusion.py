"""Domain confusion (Tzeng et al. 2015): make a speaker adversary on z_emotion maximally uncertain.

Two terms share one optimiser step without leaking into each other:
- `adversary_ce`: the adversary learns to predict the speaker from a DETACHED z_emotion, so this
  term trains the adversary only;
- `confusion`: cross-entropy between the adversary's prediction and the uniform distribution,
  computed with DETACHED adversary parameters, so this term trains the encoder only.
Unlike gradient reversal the encoder's target is "no information" (uniform), not "wrong speaker",
which is bounded and does not reward encodings that point confidently at another speaker.

The uniform target spans the speakers training has shown, not every speaker of the corpus: when
speakers are held out (speaker folds, the published protocols), the adversary never sees theirs and
gives them no probability, so a target that asks for them cannot be met; the encoder, pushed
without end, lost emotion altogether (real RAVDESS speech, 6 protocol folds: UA 0.23 against 0.50
for `none`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor, nn
from torch.func import functional_call

from avdisentangle.strategies.adversarial import AdversarialStrategy
from avdisentangle.strategies.adversary import speaker_adversary


class ConfusionStrategy(AdversarialStrategy):
    """Speaker adversary on detached z_emotion + encoder loss towards its uniform prediction over the
    speakers training has shown.

    Terms: `adversary_ce` (weight 1: it only trains the adversary) and `confusion` (times weight).
    adversary_steps > 1: the adversary's extra steps per batch (`strategies/adversarial.py`).
    """

    name = "confusion"

    def __init__(
        self, weight: float = 0.3, hidden_dim: int = 64, adversary_lr_scale: float = 10.0, adversary_steps: int = 1
    ) -> None:
        super().__init__(weight, hidden_dim, adversary_lr_scale, adversary_steps)

    def build_modules(self, pl_module: L.LightningModule) -> nn.Module:
        hparams = pl_module.hparams
        adversary = speaker_adversary(hparams.emotion_dim, self.hidden_dim, hparams.num_speakers)
        # The speakers of the training batches so far: the target spans them. Not checkpointed (older
        # checkpoints load as they are); a resumed run refills it from its first batches.
        adversary.register_buffer("seen", torch.zeros(hparams.num_speakers, dtype=torch.bool), persistent=False)
        return adversary

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        z_emotion = outputs["z_emotion"]
        if self.module.training:
            self.module.seen[batch["speaker"]] = True
        self.train_adversary(z_emotion, batch["speaker"])
        adversary_ce = self.adversary_ce(z_emotion.detach(), batch["speaker"])
        frozen = {name: p.detach() for name, p in self.module.named_parameters()}
        log_probs = functional_call(self.module, frozen, (z_emotion,)).float().log_softmax(dim=1)
        seen = self.module.seen
        target = torch.where(seen.any(), seen.float(), torch.ones_like(log_probs[0]))  # no host sync
        confusion = -(log_probs * (target / target.sum())).sum(dim=1).mean()
        return {"adversary_ce": adversary_ce, "confusion": self.weight * confusion}

"""Conditional kernel independence: remove speaker information from z_emotion in closed form.

The penalty is HSIC (Gretton et al. 2005), with the unbiased estimator of Song et al. (2012),
between a linear kernel on z_emotion and a delta kernel on the speaker. Three choices make it
work on the small batches of emotion corpora:
- z_emotion is standardised over the whole batch first, as a frozen-embedding probe does, so the
  encoder cannot hide speaker information in low-variance dimensions, nor lower the penalty by
  shrinking z;
- with `conditional`, the estimator runs within each emotion of the batch and the group values are
  averaged, weighted by group size, so only speaker information *beyond the emotion* is penalised.
  On entangled corpora, where some speakers mostly act some emotions, an unconditional penalty
  would also punish the emotion information itself. The rows are not centred within each emotion
  before the estimator: subtracting batch means makes the rows dependent, and the estimate was then
  biased upwards in proportion to the within-emotion variance (+0.25 with z independent of the
  speaker), so it punished all within-emotion variation, not identity. The estimator centres itself.
  Emotions with fewer than MIN_GROUP rows in the batch are skipped: the conditional penalty needs
  several rows per emotion, and is noisier than the unconditional one on small batches;
- the unbiased estimator is zero in expectation under (conditional) independence, so small batches
  give noisy but unbiased gradients rather than a floor that the encoder would chase.
With a linear kernel, zero cross-covariance between z and the speaker indicators is exactly the
condition under which no linear probe beats a constant (LEACE, Belrose et al. 2023): the penalty
aims at what the evaluation's linear probe reads. No adversary and no minimax.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avdisentangle.strategies.base import DisentanglementStrategy
from avdisentangle.strategies.batch_stats import batch_standardise
from avdisentangle.strategies.schedules import Schedule, ScheduleState

MIN_BATCH = 6  # rows in the batch, for the standardisation
MIN_GROUP = 4  # rows per emotion: the unbiased estimator needs n >= 4


def unbiased_hsic(kernel_a: Tensor, kernel_b: Tensor) -> Tensor:
    """Song et al. (2012) unbiased HSIC estimator; needs n >= 4."""
    n = kernel_a.shape[0]
    a = kernel_a - torch.diag_embed(torch.diagonal(kernel_a))
    b = kernel_b - torch.diag_embed(torch.diagonal(kernel_b))
    ones = torch.ones(n, 1, device=a.device, dtype=a.dtype)
    trace = (a * b).sum()
    sums = (ones.T @ a @ ones) * (ones.T @ b @ ones) / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * (ones.T @ a @ b @ ones)
    return ((trace + sums - cross) / (n * (n - 3))).squeeze()


def speaker_dependence(z: Tensor, speakers: Tensor, emotions: Tensor | None) -> Tensor | None:
    """Unbiased HSIC between batch-standardised z (linear kernel) and speaker one-hots (delta
    kernel); with emotions, the size-weighted mean of the estimates within each emotion that has
    MIN_GROUP rows or more. None when nothing can be estimated."""
    z = z.float()
    if z.shape[0] < MIN_BATCH:
        return None
    z = batch_standardise(z)
    onehot = F.one_hot(speakers).float()  # its Gram matrix is the delta kernel, whatever its width
    if emotions is None:
        return unbiased_hsic(z @ z.T, onehot @ onehot.T)
    counts = torch.bincount(emotions).tolist()
    kept = [e for e, n in enumerate(counts) if n >= MIN_GROUP]
    if not kept:
        return None
    total = sum(counts[e] for e in kept)
    within = [(emotions == e, counts[e] / total) for e in kept]
    return sum(w * unbiased_hsic(z[rows] @ z[rows].T, onehot[rows] @ onehot[rows].T) for rows, w in within)


class HSICStrategy(DisentanglementStrategy):
    """Unbiased HSIC between z_emotion and the speaker, conditional on emotion by default. Term: `hsic`."""

    name = "hsic"

    def __init__(
        self, weight: float = 1.0, conditional: bool = True, schedule: str = "dann", gamma: float = 10.0
    ) -> None:
        super().__init__(weight)
        self.conditional = conditional
        # Ramped in (dann), so both tasks are learnt before identity is squeezed out.
        self.schedule = Schedule(schedule, gamma)

    def build_modules(self, pl_module: L.LightningModule) -> nn.Module:
        return ScheduleState()

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        z_emotion = outputs["z_emotion"]
        value = speaker_dependence(z_emotion, batch["speaker"], batch["emotion"] if self.conditional else None)
        if value is None:
            return {"hsic": torch.zeros((), device=z_emotion.device)}
        scale = self.module.scale if self.module is not None else 1.0
        return {"hsic": self.weight * scale * value}

"""Conditional kernel independence: remove speaker information from z_emotion in closed form.

The penalty is normalised HSIC (centred kernel alignment, CKA) between a Gaussian kernel on
z_emotion (median-heuristic bandwidth) and a delta kernel on speaker labels. CKA is 0 when
z_emotion is independent of the speaker and 1 when its kernel is the speaker partition itself;
as a kernel measure it catches non-linear dependence, and it needs no adversary and no minimax:
it is a closed-form function of the batch.

Conditioning is what makes it safe on entangled corpora: when some speakers mostly act some
emotions, an unconditional penalty would also punish the emotion information itself. Computing
CKA within each emotion class (classes with >= 3 samples and >= 2 speakers in the batch) and
averaging asks only that z_emotion carry no speaker information *beyond the emotion*, i.e.
z_emotion independent of speaker given emotion. This is the biased (V-statistic) estimator, so
independent embeddings score a small positive value that shrinks as groups grow.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from avdisentangle.strategies.base import DisentanglementStrategy

MIN_GROUP = 3


def centre(kernel: Tensor) -> Tensor:
    """H K H with H = I - 11^T/n, without forming H."""
    return kernel - kernel.mean(dim=0, keepdim=True) - kernel.mean(dim=1, keepdim=True) + kernel.mean()


def gaussian_kernel(z: Tensor) -> Tensor:
    """exp(-|zi - zj|^2 / (2 s^2)) with s^2 the median off-diagonal squared distance (held constant)."""
    sq_dist = (z[:, None, :] - z[None, :, :]).pow(2).sum(dim=-1)
    off_diagonal = sq_dist[~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)]
    bandwidth = off_diagonal.median().detach().clamp_min(1e-8)
    return torch.exp(-sq_dist / (2.0 * bandwidth))


def label_kernel(labels: Tensor) -> Tensor:
    """Delta kernel: 1 where two samples share a label."""
    return (labels[:, None] == labels[None, :]).float()


def cka(kernel_a: Tensor, kernel_b: Tensor, eps: float = 1e-8) -> Tensor:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)); the 1/(n-1)^2 factors cancel."""
    a, b = centre(kernel_a), centre(kernel_b)
    return (a * b).sum() / ((a * a).sum() * (b * b).sum()).clamp_min(eps).sqrt()


def speaker_cka(z: Tensor, speakers: Tensor, emotions: Tensor | None) -> Tensor | None:
    """Mean CKA(z, speaker) over emotion groups (or the whole batch when emotions is None).

    Groups with fewer than 3 samples or a single speaker carry no usable signal and are skipped;
    returns None when none is left.
    """
    z = z.float()
    groups = [torch.ones_like(speakers, dtype=torch.bool)] if emotions is None else [emotions == e for e in emotions.unique()]
    values = [
        cka(gaussian_kernel(z[g]), label_kernel(speakers[g]))
        for g in groups
        if int(g.sum()) >= MIN_GROUP and speakers[g].unique().numel() >= 2
    ]
    return torch.stack(values).mean() if values else None


class HSICStrategy(DisentanglementStrategy):
    """CKA between z_emotion and speaker labels, conditional on emotion by default. Term: `hsic`."""

    name = "hsic"

    def __init__(self, weight: float = 1.0, conditional: bool = True) -> None:
        super().__init__(weight)
        self.conditional = conditional

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        z_emotion = outputs["z_emotion"]
        value = speaker_cka(z_emotion, batch["speaker"], batch["emotion"] if self.conditional else None)
        if value is None:
            return {"hsic": torch.zeros((), device=z_emotion.device)}
        return {"hsic": self.weight * value}

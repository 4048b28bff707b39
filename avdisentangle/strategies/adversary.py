"""The speaker adversary shared by the adversarial strategies (gradient reversal, confusion), alone or as an
ensemble of independently initialised adversaries whose terms are averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avdisentangle.strategies.batch_stats import batch_standardise


class BatchStandardise(nn.Module):
    """`batch_standardise` as a layer: the adversary reads z_emotion as a probe would (a batch of one passes)."""

    def forward(self, z: Tensor) -> Tensor:
        return z if z.shape[0] < 2 else batch_standardise(z)


def speaker_adversary(in_dim: int, hidden_dim: int, num_speakers: int) -> nn.Sequential:
    """Standardised input -> MLP -> speaker logits."""
    return nn.Sequential(
        BatchStandardise(), nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, num_speakers)
    )


class AdversaryEnsemble(nn.ModuleList):
    """Adversaries that read the same input; their logits stacked as (members, batch, speakers)."""

    def forward(self, z: Tensor) -> Tensor:
        return torch.stack([member(z) for member in self])


def speaker_adversaries(count: int, in_dim: int, hidden_dim: int, num_speakers: int) -> nn.Module:
    """One adversary as it always was (its checkpoints keep their keys), or an ensemble of `count`."""
    if count == 1:
        return speaker_adversary(in_dim, hidden_dim, num_speakers)
    return AdversaryEnsemble(speaker_adversary(in_dim, hidden_dim, num_speakers) for _ in range(count))


def adversary_cross_entropy(logits: Tensor, speakers: Tensor) -> Tensor:
    """Speaker cross-entropy of one adversary's logits (batch, speakers), or its mean over an ensemble's
    members (members, batch, speakers)."""
    members = logits.shape[0] if logits.dim() == 3 else 1
    return F.cross_entropy(logits.flatten(0, -2).float(), speakers.repeat(members))

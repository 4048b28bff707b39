"""The speaker adversary shared by the adversarial strategies (gradient reversal, confusion)."""

from __future__ import annotations

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

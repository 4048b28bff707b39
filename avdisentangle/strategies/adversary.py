"""The speaker adversary shared by the adversarial strategies (gradient reversal, confusion)."""

from __future__ import annotations

from torch import Tensor, nn


class BatchStandardize(nn.Module):
    """Standardise each dimension with the batch's own mean and std (no learnt or running state).

    Frozen-embedding probes standardise their input, so a dimension whose speaker signal is tiny
    in scale is as readable to them as a large one. An adversary that sees raw z_emotion can be
    fooled by shrinking such dimensions; standardising its input closes that loophole.
    """

    def forward(self, z: Tensor) -> Tensor:
        if z.shape[0] < 2:
            return z
        return (z - z.mean(dim=0)) / (z.std(dim=0) + 1e-5)


def speaker_adversary(in_dim: int, hidden_dim: int, num_speakers: int) -> nn.Sequential:
    """Standardised input -> MLP -> speaker logits."""
    return nn.Sequential(
        BatchStandardize(), nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, num_speakers)
    )

"""What sits on the shared trunk: the projections to the two embeddings and the emotion head.

The emotion head may also read z_identity through a stop-gradient (`reads_identity`, issue 19): emotion
cues are speaker-relative (a pitch is high for its speaker), so a head that sees only z_emotion needs the
speaker's baseline inside z_emotion, which is exactly the identity the strategies try to remove. Read from
the identity branch instead, the baseline need not live in z_emotion; the stop-gradient keeps the emotion
loss from shaping z_identity. Probes and strategies still see z_emotion alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def branch(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """A two-layer projection from the shared trunk to one low-dimensional embedding."""
    return nn.Sequential(
        nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(in_dim, out_dim)
    )


class EmotionHead(nn.Linear):
    """A linear emotion classifier on z_emotion, or on [z_emotion, stop_gradient(z_identity)].

    A subclass of `nn.Linear`, not a wrapper, so its parameters keep the names `emotion_head.weight` and
    `emotion_head.bias` that checkpoints written before the option hold.
    """

    def __init__(self, emotion_dim: int, identity_dim: int, num_emotions: int, reads_identity: bool = False) -> None:
        super().__init__(emotion_dim + (identity_dim if reads_identity else 0), num_emotions)
        self.reads_identity = reads_identity

    def forward(self, z_emotion: Tensor, z_identity: Tensor) -> Tensor:
        features = torch.cat([z_emotion, z_identity.detach()], dim=1) if self.reads_identity else z_emotion
        return super().forward(features)

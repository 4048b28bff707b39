"""Fusion of modality encodings into one shared hidden vector.

Both fusions share one signature (modalities, in_dim, out_dim, dropout), take a mapping
modality -> Encoded and return (B, out_dim); with a single modality they degrade to a projection
(concat) or self-attention within that modality (attention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from avdisentangle.models.encoders import Encoded


class ConcatFusion(nn.Module):
    """Concatenate the pooled vectors of each modality and mix them with a one-layer MLP."""

    def __init__(self, modalities: Sequence[str], in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.mlp = nn.Sequential(
            nn.Linear(in_dim * len(self.modalities), out_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )

    def forward(self, encoded: Mapping[str, Encoded]) -> Tensor:
        return self.mlp(torch.cat([encoded[m].pooled for m in self.modalities], dim=1))


class AttentionFusion(nn.Module):
    """One transformer layer over the joined audio and video tokens, so each attends to the other.

    A learned embedding per modality tells the layer which stream a token came from. After
    attention, tokens are mean-pooled per modality and the pooled vectors concatenated, so the
    longer sequence (audio has several times more steps than video) does not dominate the result.
    """

    def __init__(
        self, modalities: Sequence[str], in_dim: int, out_dim: int, dropout: float = 0.0, num_heads: int = 4
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.modality_embedding = nn.Parameter(0.02 * torch.randn(len(self.modalities), in_dim))
        self.attention = nn.TransformerEncoderLayer(
            d_model=in_dim,
            nhead=num_heads,
            dim_feedforward=2 * in_dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.mlp = nn.Sequential(
            nn.Linear(in_dim * len(self.modalities), out_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )

    def forward(self, encoded: Mapping[str, Encoded]) -> Tensor:
        streams = [encoded[m].tokens + self.modality_embedding[i] for i, m in enumerate(self.modalities)]
        attended = self.attention(torch.cat(streams, dim=1))
        pooled = [part.mean(dim=1) for part in attended.split([s.shape[1] for s in streams], dim=1)]
        return self.mlp(torch.cat(pooled, dim=1))

"""Decorrelation of the two embeddings: penalise linear dependence between z_emotion and z_identity.

Each dimension is standardised over the batch, so C = Ze^T Zi / B holds the Pearson correlation
of every (emotion dim, identity dim) pair; the term is weight * ||C||_F^2 / (d_e * d_i), the mean
squared correlation, which lies in [0, 1] whatever the embedding sizes. For independent embeddings
it is about 1/B (sampling noise), not 0. It acts only on the embeddings (no labels, no adversary),
so it keeps the two branches from duplicating each other but cannot remove non-linear dependence.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from avdisentangle.strategies.base import DisentanglementStrategy
from avdisentangle.strategies.batch_stats import batch_standardise


def mean_squared_correlation(z_a: Tensor, z_b: Tensor) -> Tensor:
    """||C||_F^2 / (d_a d_b) for the batch cross-correlation C of z_a and z_b."""
    a, b = (batch_standardise(z.float(), population=True) for z in (z_a, z_b))
    correlation = a.T @ b / z_a.shape[0]
    return correlation.pow(2).mean()


class OrthogonalStrategy(DisentanglementStrategy):
    """Mean squared cross-correlation between z_emotion and z_identity. Term: `cross_correlation`."""

    name = "orthogonal"

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        z_emotion = outputs["z_emotion"]
        if z_emotion.shape[0] < 2:  # a correlation needs two samples
            return {"cross_correlation": torch.zeros((), device=z_emotion.device)}
        return {"cross_correlation": self.weight * mean_squared_correlation(z_emotion, outputs["z_identity"])}

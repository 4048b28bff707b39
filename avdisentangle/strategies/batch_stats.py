"""Batch standardisation, the one place the strategies scale each dimension of an embedding by the batch.

Frozen-embedding probes standardise their input, so a dimension whose speaker signal is tiny in
scale is as readable to them as a large one. A penalty or an adversary that saw raw embeddings
could be fooled by shrinking such dimensions; standardising over the batch closes that loophole.
"""

from __future__ import annotations

from torch import Tensor


def batch_standardise(z: Tensor, eps: float = 1e-5, population: bool = False) -> Tensor:
    """Each dimension (over dim 0) to zero mean and unit spread, with no learnt or running state.

    By default it divides by the sample standard deviation (ddof 1) plus `eps`, as a probe's scaler
    does. With `population` it divides by sqrt(population variance (ddof 0) + eps), so that
    A^T B / batch_size of two standardised embeddings is their Pearson correlation matrix.
    """
    if population:
        centred = z - z.mean(dim=0, keepdim=True)
        return centred / (centred.pow(2).mean(dim=0, keepdim=True) + eps).sqrt()
    return (z - z.mean(dim=0)) / (z.std(dim=0) + eps)

"""Disentanglement strategies: Lightning callbacks that add named loss terms to the multitask model.

`STRATEGIES` maps each strategy's `name` to its class. "none" means the plain multitask baseline:
configure no strategy callback at all (it maps to None).
"""

from avdisentangle.strategies.base import DisentanglementStrategy
from avdisentangle.strategies.confusion import ConfusionStrategy
from avdisentangle.strategies.grl import GradientReversalStrategy
from avdisentangle.strategies.hsic import HSICStrategy
from avdisentangle.strategies.orthogonal import OrthogonalStrategy

STRATEGIES: dict[str, type[DisentanglementStrategy] | None] = {
    "none": None,
    **{cls.name: cls for cls in (GradientReversalStrategy, ConfusionStrategy, OrthogonalStrategy, HSICStrategy)},
}

__all__ = [
    "STRATEGIES",
    "ConfusionStrategy",
    "DisentanglementStrategy",
    "GradientReversalStrategy",
    "HSICStrategy",
    "OrthogonalStrategy",
]

"""How much identity a strategy removed from z_emotion, relative to the multitask baseline."""

from __future__ import annotations

import numpy as np


def disentanglement_pct(baseline_accuracy: float, accuracy: float) -> float:
    """Relative drop of probe speaker accuracy versus the baseline: the paper's "x% disentanglement"."""
    return 100.0 * (baseline_accuracy - accuracy) / baseline_accuracy if baseline_accuracy > 0 else float("nan")


def normalised_disentanglement_pct(baseline_accuracy: float, accuracy: float, chance: float) -> float:
    """The same drop measured against the room above chance: 100% means the probe is at chance."""
    room = baseline_accuracy - chance
    return 100.0 * (baseline_accuracy - accuracy) / room if room > 0 else float("nan")


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(list(values), dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0

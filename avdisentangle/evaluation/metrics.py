"""How much identity a strategy removed from z_emotion, and how sure we are of it.

Leakage is a probe's speaker accuracy from z_emotion. Three normalisations of its drop versus the
multitask baseline (`none`, same seed) sit side by side:
- relative (the paper's "x% disentanglement"): (leak_none - leak) / leak_none;
- against chance: (leak_none - leak) / (leak_none - 1/K);
- against the floor (the headline): (leak_none - leak) / (leak_none - floor), where the floor is
  what the true emotion label alone tells about the speaker. When speakers and emotions co-occur,
  a perfectly disentangled z_emotion still reads the speaker at the floor, so only the room above
  it can be removed.
The same floor normalisation applies to the probe's information in bits (`information.py`), whose
floor is the information the emotion label carries: accuracy saturates long before identity is gone.
Intervals: Student-t over seeds (or folds) for means and paired differences, percentile bootstrap
over test clips within one run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


class Interval(NamedTuple):
    """A point estimate with the bounds of its confidence interval (nan bounds when n < 2)."""

    mean: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """Whether the interval lies wholly on one side of `value`."""
        return bool(self.low > value or self.high < value)


def disentanglement_pct(baseline_accuracy: float, accuracy: float) -> float:
    """Relative drop of probe speaker accuracy versus the baseline: the paper's "x% disentanglement"."""
    return 100.0 * (baseline_accuracy - accuracy) / baseline_accuracy if baseline_accuracy > 0 else float("nan")


def room_disentanglement_pct(baseline: float, reading: float, reachable: float) -> float:
    """The drop measured against the room between the baseline and the lowest reachable reading
    (accuracy: chance or the emotion-label floor; bits: the emotion label's information): 100% means
    the probe reads no more than `reachable`."""
    room = baseline - reachable
    return 100.0 * (baseline - reading) / room if room > 0 else float("nan")


def emotion_label_floor(
    train_emotion: np.ndarray, train_speaker: np.ndarray, test_emotion: np.ndarray, test_speaker: np.ndarray
) -> float:
    """Speaker accuracy on test of the best guess given only the true emotion label: for each
    emotion, the speaker who shows it most often in train (ties to the lower id). It is also the
    chance level of a speaker probe that works within one emotion class (the majority guess)."""
    best = {}
    for emotion in np.unique(train_emotion):
        best[emotion] = np.bincount(train_speaker[train_emotion == emotion]).argmax()
    guesses = np.array([best.get(e, -1) for e in test_emotion])
    return float((guesses == test_speaker).mean())


def unweighted_average_recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """UAR: recall averaged over the classes present in y_true (the emotion-recognition headline)."""
    classes = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]))


def mean_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean over seeds (or folds) with its Student-t interval; nans are dropped."""
    array = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if len(array) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(array.mean())
    if len(array) < 2:
        return Interval(mean, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))
    return Interval(mean, mean - half, mean + half)


def bootstrap_interval(
    statistic: Callable[..., float],
    *columns: np.ndarray,
    resamples: int = 1000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap over rows (test clips): `statistic(*columns)` on the whole set, and the
    interval of its values on `resamples` resamples of the rows drawn with replacement."""
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    values = np.array([statistic(*(c[rows] for c in columns)) for rows in rng.integers(0, n, size=(resamples, n))])
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return Interval(float(statistic(*columns)), float(low), float(high))

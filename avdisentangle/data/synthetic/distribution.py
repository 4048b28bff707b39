"""Who shows which emotion: how many clips each speaker has of each emotion.

``correlation`` in [0, 1] moves each speaker from a uniform emotion mix (0) towards their two
dominant emotions (1); the table is exact, so the files on disk show it clip for clip.
"""

from __future__ import annotations

import numpy as np


def dominant_emotions(speaker: int, num_emotions: int) -> tuple[int, ...]:
    """The two emotions a speaker leans to as correlation rises (one when E=2, else c would do nothing).

    Adjacent pairs (e, e+1) taken in the order 0, 2, 4, ..., 1, 3, ...: the first ceil(E/2) speakers
    already cover every emotion, and every E speakers each emotion is dominant for exactly two.
    """
    order = list(range(0, num_emotions, 2)) + list(range(1, num_emotions, 2))
    first = order[speaker % num_emotions]
    return (first,) if num_emotions == 2 else (first, (first + 1) % num_emotions)


def count_clips(num_speakers: int, num_emotions: int, clips_per_speaker: int, correlation: float) -> np.ndarray:
    """Clips per (speaker, emotion): ``(1-c) * uniform + c * dominant``, rounded by largest remainder.

    Ties in the remainders are broken starting at the speaker's own index, so that at c=0 with a
    clips_per_speaker not divisible by E the extra clips rotate over emotions instead of piling up.
    """
    n_s, n_e, n = num_speakers, num_emotions, clips_per_speaker
    c = correlation
    counts = np.zeros((n_s, n_e), dtype=np.int64)
    for s in range(n_s):
        dominant = np.zeros(n_e)
        chosen = list(dominant_emotions(s, n_e))
        dominant[chosen] = 1.0 / len(chosen)
        quota = n * ((1.0 - c) / n_e + c * dominant)
        base = np.floor(quota + 1e-9).astype(np.int64)
        remainder = quota - base
        order = sorted(range(n_e), key=lambda e: (-round(remainder[e], 9), (e - s) % n_e))
        base[order[: n - int(base.sum())]] += 1
        counts[s] = base
    return counts

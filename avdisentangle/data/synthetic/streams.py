"""Random streams: every speaker, clip and name list draws from its own generator.

Each generator is seeded by (seed, domain tag, indices), so a clip never depends on the order of
generation or the number of worker processes, and the domains (speakers, clips, names) never share
a stream.
"""

from __future__ import annotations

import numpy as np

_SPEAKER, _CLIP, _NAMES = 1, 2, 3  # domain tags


def speaker_stream(seed: int, speaker_index: int) -> np.random.Generator:
    """The stream that draws one speaker's face and voice."""
    return np.random.default_rng([seed, _SPEAKER, speaker_index])


def clip_stream(seed: int, speaker_index: int, clip_index: int) -> np.random.Generator:
    """The stream that draws everything in one clip: intensity, duration, audio and video."""
    return np.random.default_rng([seed, _CLIP, speaker_index, clip_index])


def names_stream(seed: int, speaker_index: int, emotion_index: int) -> np.random.Generator:
    """The stream that orders sentences and levels within one (speaker, emotion) cell."""
    return np.random.default_rng([seed, _NAMES, speaker_index, emotion_index])

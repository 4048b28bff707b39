"""eGeMAPS (Eyben et al. 2016): openSMILE's 88 eGeMAPSv02 functionals of a clip, the classic speech-emotion baseline.

Functionals (statistics of pitch, loudness, jitter, formants... over the clip), not the per-frame
low-level descriptors: the set was designed and is reported as one vector per utterance, and a
standardised MLP over 88 numbers is the baseline the field compares with.

They are computed on the clip's audio inside the feature window (the centred `window_s` crop of a
longer clip, all of a shorter one) and never on the zero padding that fills a short clip's window:
silence would enter every functional (mean loudness, the share of voiced frames, pause lengths), so
a clip's features would depend on how much shorter than the window it is. The window keeps the audio
on the same span as the face frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from avdisentangle.data.clip_errors import ClipRefused

EGEMAPS_SIZE = 88


@lru_cache(maxsize=1)
def smile():
    """The openSMILE extractor, built once per process (its wheel ships the binary: no download)."""
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def egemaps_functionals(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(88,) float32 functionals of a mono clip; ClipRefused when openSMILE gives a non-finite value."""
    values = smile().process_signal(np.ascontiguousarray(samples, dtype=np.float32), sample_rate).to_numpy()
    values = values.reshape(-1).astype(np.float32)
    if values.shape != (EGEMAPS_SIZE,) or not np.all(np.isfinite(values)):
        raise ClipRefused(f"eGeMAPS functionals are not {EGEMAPS_SIZE} finite values")
    return values

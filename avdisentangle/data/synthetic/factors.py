"""The two factors every clip mixes: who speaks (a face and a voice) and which emotion they show.

A speaker is drawn once from the seed and shared by all their clips; an emotion is a style that moves
both the voice and the face away from the speaker's neutral, scaled by the clip's intensity.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from avdisentangle.data.synthetic.plan import actor_id
from avdisentangle.data.synthetic.streams import speaker_stream

#: How strongly a clip expresses its emotion, by CREMA-D intensity level (XX = unspecified).
LEVEL_INTENSITY = {"LO": 0.6, "MD": 0.8, "HI": 1.0, "XX": 0.8}

#: Natural hair tones (BGR): black, dark brown, brown, auburn, dark blond, grey.
HAIR_BGR = ((25, 25, 30), (30, 45, 70), (40, 70, 110), (40, 60, 130), (80, 130, 170), (120, 120, 125))


@dataclass(frozen=True)
class EmotionStyle:
    """How one emotion moves the voice and the face away from the speaker's neutral."""

    pitch_shift_st: float  # mean pitch shift in semitones
    pitch_range_st: float  # size of the pitch contour in semitones
    contour: str  # shape of the pitch contour over the utterance
    loudness_db: float
    brightness: float  # reduces spectral tilt: vocal effort
    syllable_rate_hz: float
    mouth_curve: float  # + smile, - frown
    mouth_open: float  # opening at rest, in face radii
    brow_tilt: float  # + inner ends lowered (anger), - inner ends raised (sadness, fear)
    brow_raise: float  # + whole brow higher
    eye_open: float  # 1 = neutral


NEUTRAL = EmotionStyle(0.0, 1.5, "flat", 0.0, 0.0, 4.5, 0.0, 0.02, 0.0, 0.0, 1.0)
STYLES = {
    "ANG": EmotionStyle(2.0, 4.0, "fall", 6.0, 0.35, 5.5, -0.5, 0.06, 1.0, -0.6, 0.7),
    "DIS": EmotionStyle(-1.5, 2.5, "dip", 0.0, 0.1, 3.6, -0.8, 0.03, 0.6, -0.2, 0.6),
    "FEA": EmotionStyle(4.0, 2.0, "tremble", -2.0, -0.1, 6.2, -0.2, 0.06, -0.5, 0.6, 1.35),
    "HAP": EmotionStyle(3.0, 6.0, "arch", 3.0, 0.2, 5.0, 1.0, 0.05, 0.0, 0.4, 0.85),
    "NEU": NEUTRAL,
    "SAD": EmotionStyle(-3.0, 2.0, "fall", -6.0, -0.3, 3.0, -0.7, 0.0, -1.0, -0.2, 0.55),
}


def express(emotion: str, intensity: float) -> EmotionStyle:
    """The emotion's style scaled by intensity: neutral + intensity * (emotion - neutral)."""
    style = STYLES[emotion]
    numbers = {
        k: getattr(NEUTRAL, k) + intensity * (getattr(style, k) - getattr(NEUTRAL, k))
        for k in (f.name for f in fields(EmotionStyle))
        if k != "contour"
    }
    return EmotionStyle(contour=style.contour, **numbers)


@dataclass(frozen=True)
class Speaker:
    """A speaker's identity: the face and the voice that every clip of theirs shares."""

    actor: str
    face_height: float  # fraction of frame height
    face_aspect: float  # width / height
    offset_x: float  # in [-1, 1] of the free horizontal room
    offset_y: float
    eye_spacing: float  # eye distance from centre, fraction of face half-width
    skin_bgr: tuple[float, float, float]
    hair_bgr: tuple[float, float, float]
    hair_volume: float
    background_bgr: tuple[float, float, float]
    shirt_bgr: tuple[float, float, float]
    f0_hz: float
    formants_hz: tuple[float, float, float]
    tilt: float  # harmonic amplitude roll-off exponent
    breathiness: float
    rate_factor: float
    loudness: float


def make_speaker(seed: int, index: int) -> Speaker:
    """Draw one speaker's face and voice from the seed, independently of every other speaker."""
    rng = speaker_stream(seed, index)
    tone = rng.uniform(0.0, 1.0)  # dark to light skin
    skin = np.array([60, 95, 140]) + tone * np.array([115, 105, 90]) + rng.normal(0, 6, 3)
    background = rng.uniform(60, 200, 3)
    f0 = float(np.exp(rng.uniform(np.log(90), np.log(260))))
    scale = (f0 / 150.0) ** 0.15  # higher voices tend to have shorter vocal tracts
    return Speaker(
        actor=actor_id(index),
        face_height=float(rng.uniform(0.42, 0.56)),
        face_aspect=float(rng.uniform(0.72, 0.86)),
        offset_x=float(rng.uniform(-0.7, 0.7)),
        offset_y=float(rng.uniform(-0.5, 0.5)),
        eye_spacing=float(rng.uniform(0.36, 0.46)),
        skin_bgr=_colour(skin),
        hair_bgr=_hair(np.array(HAIR_BGR[rng.integers(len(HAIR_BGR))]) * rng.uniform(0.85, 1.15), skin),
        hair_volume=float(rng.uniform(0.0, 1.0)),
        background_bgr=_colour(background),
        shirt_bgr=_colour(rng.uniform(30, 220, 3)),
        f0_hz=f0,
        formants_hz=(
            float(rng.uniform(550, 800) * scale),
            float(rng.uniform(1200, 1900) * scale),
            float(rng.uniform(2300, 3100) * scale),
        ),
        tilt=float(rng.uniform(0.8, 1.4)),
        breathiness=float(rng.uniform(0.02, 0.25)),
        rate_factor=float(rng.uniform(0.88, 1.12)),
        loudness=float(rng.uniform(0.75, 1.25)),
    )


def _luma(bgr: np.ndarray) -> float:
    """Perceived brightness of a BGR colour, as a grey-scale converter sees it."""
    return float(np.dot(bgr, (0.114, 0.587, 0.299)))


def _hair(hair: np.ndarray, skin: np.ndarray) -> tuple[float, float, float]:
    """Hair darkened to at most 60% of the skin's brightness: a light hair frame defeats face detectors."""
    return _colour(hair * min(1.0, 0.6 * _luma(skin) / _luma(hair)))


def _colour(values: np.ndarray) -> tuple[float, float, float]:
    """A BGR colour as plain floats, clipped to the displayable range (JSON-friendly)."""
    return tuple(float(round(v, 2)) for v in np.clip(values, 0, 255))

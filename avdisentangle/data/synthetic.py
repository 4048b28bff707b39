"""A built-in synthetic audio-visual emotion corpus, written in the CREMA-D layout.

Why synthetic: experiments on disentanglement need a corpus whose speaker and emotion factors are
known exactly and whose speaker-emotion dependence can be dialled in (``speaker_emotion_correlation``).
Why the CREMA-D layout: the clips then go through exactly the same reader and feature code as real data.

Every speaker has a face and a voice; every emotion changes both; the mouth follows the syllable
envelope of the audio so both streams share one timeline. Each clip draws from its own random
generator, seeded by (seed, speaker, clip), so a clip never depends on the order of generation.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
from tqdm import tqdm

from avdisentangle.errors import UserError
from avdisentangle.workers import exit_with_parent

#: Bumped whenever the generator's output changes, so cached corpora are not mistaken for current ones.
GENERATOR_VERSION = 1

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
#: How strongly a clip expresses its emotion, by CREMA-D intensity level (XX = unspecified).
LEVEL_INTENSITY = {"LO": 0.6, "MD": 0.8, "HI": 1.0, "XX": 0.8}
FIRST_ACTOR = 1001
MARKER = "synthetic.json"
FLV_CODEC_TAG = 2  # FFmpeg's tag for FLV1 (Sorenson H.263) in the flv container

#: Natural hair tones (BGR): black, dark brown, brown, auburn, dark blond, grey.
HAIR_BGR = ((25, 25, 30), (30, 45, 70), (40, 70, 110), (40, 60, 130), (80, 130, 170), (120, 120, 125))

_SEED_SPEAKER, _SEED_CLIP, _SEED_NAMES = 1, 2, 3  # domain tags: speakers, clips and names never share a stream


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that determines the corpus; two equal configs give byte-identical files."""

    num_speakers: int = 10
    num_emotions: int = 6
    clips_per_speaker: int = 36
    speaker_emotion_correlation: float = 0.0
    seed: int = 0
    sample_rate: int = 16000
    fps: int = 15
    width: int = 160
    height: int = 120
    min_duration_s: float = 1.5
    max_duration_s: float = 2.5
    emotion_strength: float = 1.0  # scales every emotion's departure from neutral, in face and voice

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self)

    def fingerprint(self) -> str:
        """A short stable hash of all fields and the generator version, for cache folder names."""
        payload = json.dumps({"config": asdict(self), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _normalise(config: SyntheticConfig) -> None:
    """Store every field as its declared type, so equal configs (0 vs 0.0) have equal fingerprints."""
    for f in fields(config):
        value = getattr(config, f.name)
        try:
            typed = int(value) if f.type == "int" else float(value)
        except (TypeError, ValueError):
            raise UserError(f"invalid SyntheticConfig: {f.name} must be a number, got {value!r}") from None
        if typed != value and not isinstance(value, str):
            raise UserError(f"invalid SyntheticConfig: {f.name} must be an integer, got {value!r}")
        object.__setattr__(config, f.name, typed)


def _validate(config: SyntheticConfig) -> None:
    """Reject configurations the generator cannot honour, saying which field is wrong."""
    checks = [
        (config.num_speakers >= 1, f"num_speakers must be >= 1, got {config.num_speakers}"),
        (2 <= config.num_emotions <= len(EMOTIONS), f"num_emotions must be in 2..{len(EMOTIONS)}, got {config.num_emotions}"),
        (config.clips_per_speaker >= 1, f"clips_per_speaker must be >= 1, got {config.clips_per_speaker}"),
        (0.0 <= config.speaker_emotion_correlation <= 1.0,
         f"speaker_emotion_correlation must be in [0, 1], got {config.speaker_emotion_correlation}"),
        (config.seed >= 0, f"seed must be >= 0, got {config.seed}"),
        (config.sample_rate >= 8000, f"sample_rate must be >= 8000 Hz, got {config.sample_rate}"),
        (config.fps >= 1, f"fps must be >= 1, got {config.fps}"),
        (config.width >= 32 and config.height >= 32 and config.width % 2 == 0 and config.height % 2 == 0,
         f"width and height must be even and >= 32, got {config.width}x{config.height}"),
        (0.5 <= config.min_duration_s <= config.max_duration_s <= 30.0,
         f"durations must satisfy 0.5 <= min_duration_s <= max_duration_s <= 30, "
         f"got {config.min_duration_s}..{config.max_duration_s}"),
        (0.0 < config.emotion_strength <= 2.0, f"emotion_strength must be in (0, 2], got {config.emotion_strength}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"invalid SyntheticConfig: {message}")
    most = int(emotion_counts(config).max())
    names = len(SENTENCES) * len(LEVELS)
    if most > names:
        raise UserError(
            f"invalid SyntheticConfig: a speaker needs {most} clips of one emotion but only {names} unique "
            f"CREMA-D names (sentence x level) exist; lower clips_per_speaker or speaker_emotion_correlation"
        )


# ----------------------------------------------------------------------------- joint distribution


def dominant_emotions(speaker: int, num_emotions: int) -> tuple[int, ...]:
    """The two emotions a speaker leans to as correlation rises (one when E=2, else c would do nothing).

    Adjacent pairs (e, e+1) taken in the order 0, 2, 4, ..., 1, 3, ...: the first ceil(E/2) speakers
    already cover every emotion, and every E speakers each emotion is dominant for exactly two.
    """
    order = list(range(0, num_emotions, 2)) + list(range(1, num_emotions, 2))
    first = order[speaker % num_emotions]
    return (first,) if num_emotions == 2 else (first, (first + 1) % num_emotions)


def emotion_counts(config: SyntheticConfig) -> np.ndarray:
    """Clips per (speaker, emotion): ``(1-c) * uniform + c * dominant``, rounded by largest remainder.

    Ties in the remainders are broken starting at the speaker's own index, so that at c=0 with a
    clips_per_speaker not divisible by E the extra clips rotate over emotions instead of piling up.
    """
    n_s, n_e, n = config.num_speakers, config.num_emotions, config.clips_per_speaker
    c = config.speaker_emotion_correlation
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


# ----------------------------------------------------------------------------- factors


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


def _express(emotion: str, intensity: float) -> EmotionStyle:
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
    rng = np.random.default_rng([seed, _SEED_SPEAKER, index])
    tone = rng.uniform(0.0, 1.0)  # dark to light skin
    skin = np.array([60, 95, 140]) + tone * np.array([115, 105, 90]) + rng.normal(0, 6, 3)
    background = rng.uniform(60, 200, 3)
    f0 = float(np.exp(rng.uniform(np.log(90), np.log(260))))
    scale = (f0 / 150.0) ** 0.15  # higher voices tend to have shorter vocal tracts
    return Speaker(
        actor=str(FIRST_ACTOR + index),
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


@dataclass(frozen=True)
class ClipPlan:
    """What one clip will be: its place in the corpus, its labels and hence its CREMA-D name."""

    speaker_index: int
    clip_index: int
    emotion: str
    sentence: str
    level: str

    @property
    def stem(self) -> str:
        return f"{FIRST_ACTOR + self.speaker_index}_{self.sentence}_{self.emotion}_{self.level}"


def plan_clips(config: SyntheticConfig) -> list[ClipPlan]:
    """Every clip's name and labels, following ``emotion_counts`` exactly.

    Within a (speaker, emotion) the k-th clip gets level k mod 4 and sentence k div 4 + 3 (k mod 4),
    both through seeded permutations: names never repeat (up to 48) and levels, hence intensities,
    are balanced in every cell.
    """
    counts = emotion_counts(config)
    plans = []
    for s in range(config.num_speakers):
        clip = 0
        for e in range(config.num_emotions):
            rng = np.random.default_rng([config.seed, _SEED_NAMES, s, e])
            levels, sentences = rng.permutation(len(LEVELS)), rng.permutation(len(SENTENCES))
            for k in range(counts[s, e]):
                sentence = SENTENCES[sentences[(k // 4 + 3 * (k % 4)) % len(SENTENCES)]]
                plans.append(ClipPlan(s, clip, EMOTIONS[e], sentence, LEVELS[levels[k % 4]]))
                clip += 1
    return plans


# ----------------------------------------------------------------------------- audio


def _syllable_envelope(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    """Loudness over time: raised-cosine syllables at ``rate`` per second with jittered timing."""
    duration = t[-1]
    start, end = rng.uniform(0.06, 0.18), duration - rng.uniform(0.06, 0.18)
    count = max(1, int((end - start) * rate))
    centres = start + (np.arange(count) + 0.5) * (end - start) / count
    centres += rng.uniform(-0.15, 0.15, count) / rate
    widths = rng.uniform(0.65, 0.95, count) / rate
    heights = rng.uniform(0.55, 1.0, count)
    phase = np.clip((t[:, None] - centres) / widths, -0.5, 0.5).astype(np.float32)  # (samples, syllables)
    bumps = 0.5 * (1.0 + np.cos(2.0 * np.pi * phase))
    return np.clip((bumps * heights).sum(axis=1), 0.0, 1.2)


def _contour(shape: str, u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Zero-mean pitch contour (in units of the emotion's pitch range) over normalised time u."""
    if shape == "fall":
        return 0.5 - u
    if shape == "dip":
        return np.cos(np.pi * u) ** 2 - 0.5
    if shape == "arch":
        return np.sin(np.pi * u) - 2.0 / np.pi
    if shape == "tremble":
        return 0.5 * np.sin(2.0 * np.pi * 6.0 * t) + 0.4 * (u - 0.5)
    return 0.2 * (np.sin(np.pi * u) - 2.0 / np.pi)  # flat: only a slight arch


def synthesize_voice(
    rng: np.random.Generator, speaker: Speaker, style: EmotionStyle, duration_s: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Audio samples, their syllable envelope (for the mouth) and the clip's mean f0.

    Additive synthesis: harmonics of a time-varying f0, weighted by a spectral tilt and formant-like
    peaks evaluated at each harmonic's current frequency, plus breath noise shaped by the envelope.
    """
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rate = style.syllable_rate_hz * speaker.rate_factor * rng.uniform(0.9, 1.1)
    envelope = _syllable_envelope(rng, t, rate)

    u = t / t[-1]
    wander = np.interp(t, np.linspace(0, t[-1], 6), rng.normal(0, 0.4, 6))  # slow pitch drift
    semitones = style.pitch_shift_st + rng.normal(0, 0.7) + style.pitch_range_st * _contour(style.contour, u, t) + wander
    f0 = speaker.f0_hz * 2.0 ** (semitones / 12.0)
    phase = (2.0 * np.pi * np.cumsum(f0) / sample_rate) % (2.0 * np.pi)  # wrapped: float32-safe below

    nyquist_safe = 0.45 * sample_rate
    harmonics = np.arange(1, min(48, int(nyquist_safe / f0.max())) + 1, dtype=np.float32)
    step = sample_rate // 100  # harmonic weights at 100 Hz control rate, then interpolated
    control = np.arange(0, n, step)
    freqs = f0[control, None] * harmonics  # (control, harmonics)
    formants = np.array(speaker.formants_hz) * rng.uniform(0.93, 1.07, 3)
    peaks = sum(np.exp(-0.5 * ((freqs - f) / (0.12 * f + 60)) ** 2) * g for f, g in zip(formants, (1.0, 0.7, 0.4)))
    weights = (0.15 + peaks) * harmonics ** -(speaker.tilt - style.brightness)
    weights /= np.sqrt(0.5 * (weights**2).sum(axis=1, keepdims=True))  # unit RMS at any pitch
    position = np.arange(n) / step
    low = np.minimum(position.astype(int), len(control) - 1)
    high = np.minimum(low + 1, len(control) - 1)
    frac = (position - low).astype(np.float32)[:, None]
    weights = weights.astype(np.float32)
    weights = weights[low] * (1 - frac) + weights[high] * frac
    voiced = (weights * np.sin(phase.astype(np.float32)[:, None] * harmonics)).sum(axis=1, dtype=np.float64)

    breath = np.diff(rng.normal(0, 1, n + 1)) * speaker.breathiness
    floor = rng.normal(0, 0.003, n)
    gain = 0.09 * speaker.loudness * 10 ** (style.loudness_db / 20) * rng.uniform(0.9, 1.1)
    audio = gain * envelope * (voiced + breath) + floor
    return np.clip(audio, -1.0, 1.0), envelope, float(f0.mean())


# ----------------------------------------------------------------------------- video


@dataclass(frozen=True)
class FacePose:
    """One frame's face: where it is and what its features are doing."""

    cx: float
    cy: float
    radius: float  # half the face height, pixels
    mouth_open: float  # in face radii
    eye_open: float


def _ellipse(img: np.ndarray, centre, axes, colour) -> None:
    """Filled anti-aliased ellipse with sub-pixel centre and axes (cv2 fixed point, 4 fractional bits)."""
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    a = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(img, c, a, 0, 0, 360, colour, -1, cv2.LINE_AA, 4)


def _polygon(img: np.ndarray, points: np.ndarray, colour) -> None:
    """Anti-aliased filled polygon with sub-pixel vertices."""
    cv2.fillPoly(img, [np.round(points * 16).astype(np.int32)], colour, cv2.LINE_AA, 4)


def _shade(colour, factor: float) -> tuple[float, float, float]:
    """The colour lit by ``factor`` (below 1: in shadow)."""
    return tuple(float(min(255.0, c * factor)) for c in colour)


def draw_face(img: np.ndarray, speaker: Speaker, style: EmotionStyle, pose: FacePose) -> None:
    """Paint a shaded frontal face: the light-dark layout (dark sockets and brows, light forehead,
    cheeks and nose bridge, dark mouth) is what Haar face detectors key on."""
    cx, cy, r = pose.cx, pose.cy, pose.radius
    rw = r * speaker.face_aspect
    skin, hair = speaker.skin_bgr, speaker.hair_bgr
    h = img.shape[0]

    _ellipse(img, (cx, cy + 1.55 * r), (1.6 * rw, 0.75 * r), speaker.shirt_bgr)  # shoulders
    cv2.rectangle(img, (int(cx - 0.45 * rw), int(cy + 0.5 * r)), (int(cx + 0.45 * rw), h), _shade(skin, 0.7), -1)
    _ellipse(img, (cx, cy - 0.12 * r), (1.08 * rw + 0.08 * r * speaker.hair_volume, (1.06 + 0.1 * speaker.hair_volume) * r), hair)
    _ellipse(img, (cx, cy), (rw, r), _shade(skin, 0.82))  # shaded rim
    _ellipse(img, (cx, cy - 0.02 * r), (0.86 * rw, 0.9 * r), skin)
    _ellipse(img, (cx, cy - 0.45 * r), (0.55 * rw, 0.25 * r), _shade(skin, 1.1))  # forehead light
    _ellipse(img, (cx, cy - 0.92 * r), (0.95 * rw, 0.28 * r), hair)  # fringe
    for side in (-1, 1):
        _ellipse(img, (cx + side * 0.5 * rw, cy + 0.18 * r), (0.26 * rw, 0.2 * r), _shade(skin, 1.08))  # cheek

    eye_y = cy - 0.15 * r
    brow_colour = tuple(0.5 * min(a, b) for a, b in zip(hair, skin))  # brows stay dark whatever the hair
    raise_px = 0.07 * style.brow_raise * r
    eye_white = tuple(0.5 * a + 110 for a in skin)  # half-lit whites: the eye band must stay darker than the cheeks
    for side in (-1, 1):
        ex = cx + side * speaker.eye_spacing * rw
        lift = 0.5 * raise_px  # the socket shadow reaches up to a raised brow: no lit gap between them
        _ellipse(img, (ex, eye_y - lift), (0.32 * rw, 0.17 * r + lift), _shade(skin, 0.5))  # socket
        openness = max(0.15, pose.eye_open)
        _ellipse(img, (ex, eye_y), (0.18 * rw, 0.065 * r * openness), eye_white)
        _ellipse(img, (ex, eye_y), (0.075 * r, 0.065 * r * min(openness, 1.15)), (35, 30, 30))
        inner, outer = ex - side * 0.24 * rw, ex + side * 0.26 * rw
        brow_y = eye_y - 0.22 * r - raise_px
        tilt = 0.035 * style.brow_tilt * r  # turns the brow about its middle
        brow = np.array([
            [inner, brow_y + tilt], [outer, brow_y - tilt - 0.02 * r],
            [outer, brow_y - tilt + 0.05 * r], [inner, brow_y + tilt + 0.08 * r],
        ])
        _polygon(img, brow, brow_colour)

    _ellipse(img, (cx, eye_y + 0.05 * r), (0.08 * rw, 0.3 * r), _shade(skin, 1.15))  # nose bridge
    _ellipse(img, (cx, cy + 0.2 * r), (0.17 * rw, 0.05 * r), _shade(skin, 0.6))  # nostril shadow

    mouth_y, half = cy + 0.45 * r, 0.34 * rw * (1 + 0.08 * style.mouth_curve)
    x = np.linspace(-1, 1, 13)
    upper = mouth_y - 0.09 * style.mouth_curve * r * x**2 + 0.03 * style.mouth_curve * r
    lower = upper + (0.025 + pose.mouth_open) * r * np.sqrt(1 - x**2) + 0.01 * r
    xs = cx + half * x
    lips = np.concatenate([np.stack([xs, upper - 0.03 * r], 1), np.stack([xs, lower + 0.03 * r], 1)[::-1]])
    _polygon(img, lips, _shade(skin, 0.55))
    _polygon(img, np.concatenate([np.stack([xs, upper], 1), np.stack([xs, lower], 1)[::-1]]), (25, 20, 35))


def render_video(
    rng: np.random.Generator, config: SyntheticConfig, speaker: Speaker, style: EmotionStyle, envelope: np.ndarray, num_frames: int
) -> list[np.ndarray]:
    """Frames whose mouth opening follows the audio envelope at each frame's centre time."""
    w, h = config.width, config.height
    radius = 0.5 * speaker.face_height * h * rng.uniform(0.96, 1.04)
    room_x = max(0.0, w / 2 - 1.25 * radius * speaker.face_aspect)
    room_y = max(0.0, h / 2 - 1.2 * radius)
    cx0 = w / 2 + speaker.offset_x * room_x + rng.normal(0, 0.03 * w)
    cy0 = h / 2 + speaker.offset_y * room_y + rng.normal(0, 0.03 * h)
    sway = rng.uniform(0.005, 0.02, 2) * np.array([w, h])
    sway_hz, sway_phase = rng.uniform(0.3, 1.0, 2), rng.uniform(0, 2 * np.pi, 2)
    blink = rng.integers(0, num_frames) if rng.random() < 0.5 else -1
    light = rng.uniform(0.9, 1.1)
    times = (np.arange(num_frames) + 0.5) / config.fps
    samples = np.minimum((times * config.sample_rate).astype(int), len(envelope) - 1)
    open_by_frame = style.mouth_open + 0.22 * envelope[samples]

    falloff = np.linspace(1.1, 0.85, h)[:, None, None]  # soft vertical light falloff
    background = np.clip(np.array(speaker.background_bgr) * falloff, 0, 255).astype(np.uint8).repeat(w, axis=1)
    frames = []
    for i, t in enumerate(times):
        img = background.copy()
        offset = sway * np.sin(2 * np.pi * sway_hz * t + sway_phase)
        pose = FacePose(cx0 + offset[0], cy0 + offset[1], radius, float(open_by_frame[i]), 0.15 if i == blink else style.eye_open)
        draw_face(img, speaker, style, pose)
        img = cv2.GaussianBlur(img, (0, 0), 0.6 + h / 400).astype(np.float32) * light
        img += 3.0 * rng.standard_normal((h, w, 1), dtype=np.float32)  # luminance sensor noise
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


# ----------------------------------------------------------------------------- corpus


def _clip_duration(rng: np.random.Generator, config: SyntheticConfig) -> tuple[float, int]:
    """A duration that is a whole number of audio samples, and the video frame count it implies."""
    samples = int(round(rng.uniform(config.min_duration_s, config.max_duration_s) * config.sample_rate))
    duration = samples / config.sample_rate
    return duration, int(round(duration * config.fps))


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV, written to a temporary name and moved into place."""
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _write_flv(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Flash video as in CREMA-D's VideoFlash, written to a temporary ``.flv`` name and moved into place."""
    tmp = path.with_name(f".{path.stem}.tmp.flv")  # the extension picks ffmpeg's container
    height, width = frames[0].shape[:2]
    # FLV's own codec tag (2, Sorenson H.263) rather than the fourcc "FLV1": the same bytes, without
    # OpenCV's two-line warning per file about falling back to that tag.
    writer = cv2.VideoWriter(str(tmp), FLV_CODEC_TAG, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write FLV1 video to {tmp}; is this OpenCV built with FFMPEG?")
    for frame in frames:
        writer.write(frame)
    writer.release()
    os.replace(tmp, path)


def write_clip(root: Path, config: SyntheticConfig, speaker: Speaker, plan: ClipPlan) -> dict:
    """Synthesise and write one clip's WAV and FLV; return its ground-truth factors."""
    rng = np.random.default_rng([config.seed, _SEED_CLIP, plan.speaker_index, plan.clip_index])
    intensity = LEVEL_INTENSITY[plan.level] * config.emotion_strength * rng.uniform(0.85, 1.15)
    style = _express(plan.emotion, intensity)
    duration, num_frames = _clip_duration(rng, config)
    audio, envelope, f0 = synthesize_voice(rng, speaker, style, duration, config.sample_rate)
    frames = render_video(rng, config, speaker, style, envelope, num_frames)
    _write_wav(root / "AudioWAV" / f"{plan.stem}.wav", audio, config.sample_rate)
    _write_flv(root / "VideoFlash" / f"{plan.stem}.flv", frames, config.fps)
    return {
        "clip_id": plan.stem,
        "speaker": speaker.actor,
        "speaker_index": plan.speaker_index,
        "emotion": plan.emotion,
        "sentence": plan.sentence,
        "level": plan.level,
        "intensity": round(intensity, 4),
        "duration_s": duration,
        "num_frames": num_frames,
        "mean_f0_hz": round(f0, 2),
    }


def is_complete(root: str | Path, config: SyntheticConfig) -> bool:
    """Whether root already holds a finished corpus made from this config by this generator version."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("fingerprint") == config.fingerprint() and meta.get("config") == asdict(config)


def _refuse_foreign_contents(root: Path, config: SyntheticConfig, stems: set[str]) -> None:
    """Refuse to write into a root holding another corpus, rather than mixing two corpora."""
    marker = root / MARKER
    if marker.exists():
        raise UserError(
            f"{root} already holds a different synthetic corpus ({MARKER} does not match config "
            f"{config.fingerprint()}); use an empty folder, e.g. one named by config.fingerprint()"
        )
    for folder, suffix in (("AudioWAV", ".wav"), ("VideoFlash", ".flv")):
        for path in (root / folder).glob(f"*{suffix}"):
            if not path.name.startswith(".") and path.stem not in stems:
                raise UserError(f"{root} holds a file this corpus would not write ({path}); use an empty folder")


def generate_corpus(root: str | Path, config: SyntheticConfig = SyntheticConfig(), *, progress: bool = True, workers: int = 0) -> Path:
    """Write the corpus under root and return root; `workers` processes write clips side by side.

    Idempotent: if root already holds a finished corpus with the same config, nothing is done. The manifest ``synthetic.json`` is written last and atomically, so its presence means every clip
    is in place; an interrupted run leaves no manifest and is simply redone. Every clip has its own
    random stream, so the files are the same whatever the number of workers.
    """
    root = Path(root)
    if is_complete(root, config):
        return root
    plans = plan_clips(config)
    if root.exists():
        _refuse_foreign_contents(root, config, {p.stem for p in plans})
    for folder in ("AudioWAV", "VideoFlash"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    speakers = [make_speaker(config.seed, s) for s in range(config.num_speakers)]
    bar = tqdm(total=len(plans), desc="synthetic corpus", unit="clip", disable=not progress)
    clips = []
    for chunk in _write_chunks(root, config, speakers, plans, workers):
        clips += chunk
        bar.update(len(chunk))
    bar.close()
    meta = {
        "generator": GENERATOR_VERSION,
        "fingerprint": config.fingerprint(),
        "config": asdict(config),
        "emotions": list(EMOTIONS[: config.num_emotions]),
        "emotion_counts": emotion_counts(config).tolist(),
        "speakers": [asdict(s) for s in speakers],
        "clips": clips,
    }
    tmp = root / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, root / MARKER)
    return root


CHUNK_CLIPS = 16  # clips per task: small enough for a live progress bar, large enough to amortise the hand-off


def _write_chunk(root: Path, config: SyntheticConfig, speakers: list[Speaker], plans: list[ClipPlan]) -> list[dict]:
    return [write_clip(root, config, speakers[plan.speaker_index], plan) for plan in plans]


def _write_chunks(root: Path, config: SyntheticConfig, speakers: list[Speaker], plans: list[ClipPlan], workers: int):
    """Yield each chunk's clip metadata in plan order, from a process pool when workers > 0."""
    chunks = [plans[i : i + CHUNK_CLIPS] for i in range(0, len(plans), CHUNK_CLIPS)]
    if workers <= 0 or len(chunks) <= 1:
        for chunk in chunks:
            yield _write_chunk(root, config, speakers, chunk)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=exit_with_parent) as pool:
        yield from pool.map(_write_chunk, *zip(*[(root, config, speakers, chunk) for chunk in chunks]))

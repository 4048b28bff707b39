"""What determines a synthetic corpus: one frozen config, checked on construction, and its fingerprint.

Two equal configs give byte-identical files, so the fingerprint (config plus generator version) can
name a cache folder; a config the generator cannot honour is refused here, naming the wrong field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

import numpy as np

from avdisentangle.data.corpora.cremad import EMOTION_CODES, LEVEL_CODES, SENTENCE_CODES
from avdisentangle.data.synthetic.distribution import count_clips
from avdisentangle.errors import UserError

#: Bumped whenever the generator's output changes, so cached corpora are not mistaken for current ones.
GENERATOR_VERSION = 1


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

    def emotion_counts(self) -> np.ndarray:
        """Clips per (speaker, emotion) that this config asks for (see `distribution.count_clips`)."""
        correlation = self.speaker_emotion_correlation
        return count_clips(self.num_speakers, self.num_emotions, self.clips_per_speaker, correlation)


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


def _field_errors(config: SyntheticConfig) -> list[str]:
    """One message per field whose value the generator cannot honour."""
    emotions = len(EMOTION_CODES)
    checks = [
        (config.num_speakers >= 1, f"num_speakers must be >= 1, got {config.num_speakers}"),
        (2 <= config.num_emotions <= emotions, f"num_emotions must be in 2..{emotions}, got {config.num_emotions}"),
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
    return [message for ok, message in checks if not ok]


def _validate(config: SyntheticConfig) -> None:
    """Reject configurations the generator cannot honour, saying which field is wrong."""
    errors = _field_errors(config)
    if errors:
        raise UserError(f"invalid SyntheticConfig: {errors[0]}")
    most = int(config.emotion_counts().max())
    names = len(SENTENCE_CODES) * len(LEVEL_CODES)
    if most > names:
        raise UserError(
            f"invalid SyntheticConfig: a speaker needs {most} clips of one emotion but only {names} unique "
            f"CREMA-D names (sentence x level) exist; lower clips_per_speaker or speaker_emotion_correlation"
        )

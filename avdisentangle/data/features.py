"""Per-clip features: an audio window (log-mel, eGeMAPS or a speech model's) and face crops on the same timeline.

Audio is the time reference: one fixed-length window (centre crop, or zero padding for short
clips) gives the log-mel frames, and `num_frames` video frames are sampled at the centres of
equal slices of that same window, so a batch holds aligned, fixed-size tensors. A run of one
modality (`modalities`: an audio-only speech corpus, say) extracts and caches that one alone; a
video-only run takes its window from the video's own duration. Reading the files is left to
`audio` and `faces`; this module holds the settings and every step that depends on them. The
alternatives to the log-mel (`audio`: egemaps, ssl) live in `egemaps.py` and `ssl_features.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from avdisentangle.data.audio import load_audio
from avdisentangle.data.clip_errors import ClipRefused
from avdisentangle.data.egemaps import EGEMAPS_SIZE, egemaps_functionals
from avdisentangle.data.faces import crop_square, detect_face, read_frames, video_duration
from avdisentangle.data.modalities import parse_modalities
from avdisentangle.data.records import ClipRecord
from avdisentangle.data.ssl_features import SSLConfig
from avdisentangle.errors import UserError

SHORT_CLIP_POLICIES = ("pad", "refuse")
COLORS = ("grey", "rgb")
AUDIO_FEATURES = ("logmel", "egemaps", "ssl")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that changes the cached arrays; its fingerprint names the cache.

    `modalities` ("audio,video", "audio" or "video") says which arrays are extracted and cached; the CLI
    links it into the model's `modalities`, so the data and the model never disagree. `audio` says what the
    audio array holds: logmel (n_mels, frames) float16, egemaps (88,) float32 functionals, or ssl (L, K, D)
    float16 hidden-state summaries of the speech model in `ssl.path` (`ssl_features.py`)."""

    modalities: str = "audio,video"
    sample_rate: int = 16000
    n_mels: int = 64
    hop_ms: float = 10.0
    win_ms: float = 25.0
    window_s: float = 2.0
    short_clips: str = "pad"
    min_duration_s: float = 0.5
    num_frames: int = 8
    face_size: int = 64
    color: str = "grey"
    face_detections: int = 3
    face_margin: float = 0.25
    detection_height: int = 120
    audio: str = "logmel"
    ssl: SSLConfig = SSLConfig()

    def __post_init__(self):
        # Canonical order and spelling ("video, audio" -> "audio,video"): one cache, one fingerprint.
        object.__setattr__(self, "modalities", ",".join(parse_modalities(self.modalities)))
        if isinstance(self.ssl, dict):  # as meta.json and checkpoints' plain dicts hold it
            object.__setattr__(self, "ssl", SSLConfig(**self.ssl))
        if self.audio not in AUDIO_FEATURES:
            raise UserError(f"audio must be one of {AUDIO_FEATURES}, got {self.audio!r}")
        if self.short_clips not in SHORT_CLIP_POLICIES:
            raise UserError(f"short_clips must be one of {SHORT_CLIP_POLICIES}, got {self.short_clips!r}")
        if self.color not in COLORS:
            raise UserError(f"color must be one of {COLORS}, got {self.color!r}")
        for name in ("sample_rate", "n_mels", "num_frames", "face_size", "face_detections", "detection_height"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 < self.min_duration_s <= self.window_s:
            raise UserError(f"need 0 < min_duration_s <= window_s, got {self.min_duration_s} and {self.window_s}")
        if self.hop_ms <= 0 or self.win_ms < self.hop_ms:
            raise UserError(f"need 0 < hop_ms <= win_ms, got {self.hop_ms} and {self.win_ms}")

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(self.modalities.split(","))

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def window_samples(self) -> int:
        return round(self.sample_rate * self.window_s)

    @property
    def audio_frames(self) -> int:
        return 1 + self.window_samples // self.hop_length

    @property
    def video_channels(self) -> int:
        return 1 if self.color == "grey" else 3

    @property
    def audio_shape(self) -> tuple[int, ...]:
        """One clip's cached audio array; for ssl read from the model folder's config.json."""
        if self.audio == "egemaps":
            return (EGEMAPS_SIZE,)
        if self.audio == "ssl":
            return self.ssl.shape()
        return (self.n_mels, self.audio_frames)

    @property
    def audio_dtype(self) -> type:
        return np.float32 if self.audio == "egemaps" else np.float16

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, self.video_channels, self.face_size, self.face_size)

    def fingerprint(self) -> str:
        """A short hash of the settings. A log-mel cache keeps the name it had before `audio` existed; an ssl
        cache is named after the model's content and summary (`SSLConfig.signature`), not its batch or device."""
        settings = asdict(self)
        del settings["audio"], settings["ssl"]
        if self.audio != "logmel":
            settings["audio"] = self.audio
        if self.audio == "ssl":
            settings["ssl"] = self.ssl.signature()
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class ClipFeatures:
    """One clip's arrays, of the configured modalities only (the other is None)."""

    audio: np.ndarray | None  # as `FeatureConfig.audio_shape`; for ssl the raw window, which the parent embeds
    video: np.ndarray | None  # (num_frames, channels, face_size, face_size) uint8
    face_found: bool | None  # None without video
    audio_samples: int = 0  # the clip's samples in the window (the rest is zero padding)


def extract_clip(record: ClipRecord, config: FeatureConfig, detector: cv2.CascadeClassifier) -> ClipFeatures:
    """Features of one clip, or ClipRefused with the reason it cannot be used."""
    waveform = None
    if "audio" in config.modality_names:
        waveform = load_audio(Path(record.audio_path), config.sample_rate)
        duration = len(waveform) / config.sample_rate
    else:
        duration = video_duration(Path(record.video_path))
    if duration < config.min_duration_s:
        raise ClipRefused(f"clip shorter than min_duration_s: {duration:.2f} s < {config.min_duration_s} s")
    if duration < config.window_s and config.short_clips == "refuse":
        raise ClipRefused(f"clip shorter than the window (short_clips=refuse): {duration:.2f} s < {config.window_s} s")
    start = max(0.0, (duration - config.window_s) / 2)
    audio, samples = (None, 0) if waveform is None else audio_features(waveform, start, config)
    if "video" not in config.modality_names:
        return ClipFeatures(audio=audio, video=None, face_found=None, audio_samples=samples)
    frame_times = start + (np.arange(config.num_frames) + 0.5) * config.window_s / config.num_frames
    frame_times = np.minimum(frame_times, duration - 1e-3)  # padding repeats the last frame
    frames = read_frames(Path(record.video_path), frame_times)
    video, face_found = crop_faces(frames, config, detector)
    return ClipFeatures(audio=audio, video=video, face_found=face_found, audio_samples=samples)


def audio_features(waveform: np.ndarray, start_s: float, config: FeatureConfig) -> tuple[np.ndarray, int]:
    """The clip's audio array in the window from `start_s` and how many of the window's samples are the clip's.
    eGeMAPS reads the clip without padding (`egemaps.py` says why); ssl returns the padded window for the
    parent to embed."""
    segment = clip_audio(waveform, start_s, config)
    if config.audio == "egemaps":
        return egemaps_functionals(segment, config.sample_rate), len(segment)
    window = np.pad(segment, (0, config.window_samples - len(segment)))
    return (window if config.audio == "ssl" else log_mel(window, config)), len(segment)


def clip_audio(waveform: np.ndarray, start_s: float, config: FeatureConfig) -> np.ndarray:
    """At most `window_samples` samples from `start_s`: the window, less the padding a short clip needs."""
    begin = int(round(start_s * config.sample_rate))
    return waveform[begin : begin + config.window_samples]


def log_mel(segment: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Log-mel power in dB relative to full scale (loudness is an emotion cue: no per-clip norm)."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=segment,
        sr=config.sample_rate,
        n_fft=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        center=True,
    )
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).astype(np.float16)


def warm_up_audio_features() -> None:
    """Compile librosa's numba kernels into numba's on-disk cache once (`make setup` calls this).

    With the cache empty, as in a fresh environment, every `prepare` worker spends 15-60 s compiling the
    STFT's kernels before its first clip; with it filled, loading them takes about a second
    (benchmarks/first_run.py). The input has the dtype real clips have, so the same specialisation is cached.
    """
    config = FeatureConfig()
    log_mel(np.zeros(config.window_samples, dtype=np.float32), config)


def crop_faces(
    frames: list[np.ndarray], config: FeatureConfig, detector: cv2.CascadeClassifier
) -> tuple[np.ndarray, bool]:
    """Crop every sampled frame with one face box; a centre crop when no face is found.

    Faces are detected on a few frames only (detection costs ~10x decoding), and the median box is
    used for the whole window: heads move little within seconds and the median discards a single
    false detection."""
    probe = np.linspace(0, len(frames) - 1, min(config.face_detections, len(frames))).round().astype(int)
    found = (detect_face(frames[index], detector, config.detection_height) for index in probe)
    boxes = [box for box in found if box is not None]
    height, width = frames[0].shape[:2]
    if boxes:
        centre_x, centre_y, side = np.median(np.array(boxes, dtype=np.float64), axis=0)
        side *= 1 + config.face_margin
    else:
        centre_x, centre_y, side = width / 2, height / 2, 0.8 * min(height, width)
    crops = [crop_square(frame, centre_x, centre_y, side, config.face_size, config.color) for frame in frames]
    return np.stack(crops), bool(boxes)

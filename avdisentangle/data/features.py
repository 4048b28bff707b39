"""Per-clip feature extraction: a log-mel window and face crops sampled on the same timeline.

Audio is the time reference: one fixed-length window (centre crop, or zero padding for short
clips) gives the log-mel frames, and `num_frames` video frames are sampled at the centres of
equal slices of that same window, so a batch holds aligned, fixed-size tensors.
Faces are detected on a few frames only (detection costs ~10x decoding) on downscaled grey
frames, and the median box is used for the whole window: heads move little within seconds and
the median discards a single false detection.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from avdisentangle.data.records import ClipRecord
from avdisentangle.errors import UserError

SHORT_CLIP_POLICIES = ("pad", "refuse")
COLORS = ("grey", "rgb")
# Face detection runs on grey frames downscaled to `FeatureConfig.detection_height`, searching face
# sizes in steps of DETECTION_SCALE_STEP. On 480x360 clips, 120 px and steps of 1.2 instead of 180 px
# and 1.1 cut a detection from 9.7 to 3.8 ms and move the box by at most 2.5% of its side (p95).
DETECTION_SCALE_STEP = 1.2
MAX_MISSING_FRAME_FRACTION = 0.25


class ClipRefused(Exception):
    """A clip that cannot be turned into features; the message is the reason shown to the user,
    `<kind>: <detail>` (see `Refusal`), and never names the file, which the refusal's item does."""


def describe_error(error: BaseException) -> str:
    """An exception as a refusal detail that is never empty: some decoders raise without a message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    message = str(error).strip()
    if message:
        return f"{type(error).__name__}: {message}"
    if type(error).__name__ == "NoBackendError":  # audioread's, raised with no message at all
        return "no decoder could read its audio (a video without an audio stream, or a format that needs ffmpeg)"
    return f"{type(error).__name__} (raised without a message)"


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that changes the cached arrays; its fingerprint names the cache."""

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

    def __post_init__(self):
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
    def audio_shape(self) -> tuple[int, int]:
        return (self.n_mels, self.audio_frames)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, self.video_channels, self.face_size, self.face_size)

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class ClipFeatures:
    audio: np.ndarray  # (n_mels, audio_frames) float16 log-mel in dB
    video: np.ndarray  # (num_frames, channels, face_size, face_size) uint8
    face_found: bool


def load_face_detector() -> cv2.CascadeClassifier:
    """The Haar frontal-face cascade that ships inside opencv-python 4.x (offline)."""
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise RuntimeError(f"could not load the Haar cascade at {path}; is opencv-python>=4.10,<5 installed?")
    return detector


def extract_clip(record: ClipRecord, config: FeatureConfig, detector: cv2.CascadeClassifier) -> ClipFeatures:
    """Features of one clip, or ClipRefused with the reason it cannot be used."""
    waveform = load_audio(Path(record.audio_path), config.sample_rate)
    duration = len(waveform) / config.sample_rate
    if duration < config.min_duration_s:
        raise ClipRefused(f"clip shorter than min_duration_s: {duration:.2f} s < {config.min_duration_s} s")
    if duration < config.window_s and config.short_clips == "refuse":
        raise ClipRefused(f"clip shorter than the window (short_clips=refuse): {duration:.2f} s < {config.window_s} s")
    start = max(0.0, (duration - config.window_s) / 2)
    audio = log_mel(window_audio(waveform, start, config), config)
    frame_times = start + (np.arange(config.num_frames) + 0.5) * config.window_s / config.num_frames
    frame_times = np.minimum(frame_times, duration - 1e-3)  # padding repeats the last frame
    frames = read_frames(Path(record.video_path), frame_times)
    video, face_found = crop_faces(frames, config, detector)
    return ClipFeatures(audio=audio, video=video, face_found=face_found)


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 at `sample_rate`; refuses empty, truncated or undecodable files."""
    import librosa  # imported here: its import costs ~1 s and only workers need it

    try:
        if path.suffix.lower() == ".wav":
            check_wav_complete(path)
        waveform, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    except ClipRefused:
        raise
    except Exception as error:  # soundfile and audioread raise many unrelated types
        raise ClipRefused(f"unreadable audio: {describe_error(error)}") from None
    if waveform.size == 0:
        raise ClipRefused("audio holds no samples")
    if not np.all(np.isfinite(waveform)):
        raise ClipRefused("audio holds NaN or infinite samples")
    return waveform


def check_wav_complete(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header declares (a cut-off copy).

    libsndfile silently returns the samples that are there, so truncation is only visible by
    comparing the declared chunk size with the bytes on disk.
    """
    size = path.stat().st_size
    if size == 0:
        raise ClipRefused("empty audio file (0 bytes)")
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ClipRefused("audio is not a RIFF/WAVE file")
        position = 12
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                raise ClipRefused("truncated audio: no data chunk in its header")
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            position += 8
            if chunk_id == b"data":
                if position + chunk_size > size:
                    raise ClipRefused(
                        f"truncated audio: its header declares {chunk_size} data bytes, "
                        f"the file holds {size - position}"
                    )
                return
            position += chunk_size + (chunk_size & 1)
            handle.seek(position)


def window_audio(waveform: np.ndarray, start_s: float, config: FeatureConfig) -> np.ndarray:
    """Exactly `window_samples` samples from `start_s`, zero-padded at the end when short."""
    begin = int(round(start_s * config.sample_rate))
    segment = waveform[begin : begin + config.window_samples]
    return np.pad(segment, (0, config.window_samples - len(segment)))


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


def read_frames(path: Path, times_s: np.ndarray) -> list[np.ndarray]:
    """Decode sequentially, converting only the frames nearest to `times_s` (grab, then retrieve).

    Frames past the end of a slightly short video repeat the last decoded one; a video missing
    more than a quarter of the window is refused as truncated.
    """
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ClipRefused("unreadable video: OpenCV could not open it")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise ClipRefused("unreadable video: no frame rate in its header")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = np.floor(times_s * fps).clip(min=0).astype(int)  # the frame shown at each time
        if declared > 0:
            # The audio may outlast the last frame by a fraction of a frame period.
            wanted = np.minimum(wanted, declared - 1)
        wanted_set = set(wanted.tolist())
        frames: dict[int, np.ndarray] = {}
        decoded = 0
        for index in range(int(wanted.max()) + 1):
            if not capture.grab():
                break
            decoded += 1
            if index in wanted_set:
                ok, frame = capture.retrieve()
                if ok:
                    frames[index] = frame
    finally:
        capture.release()
    if not frames:
        raise ClipRefused("unreadable or truncated video: no frame could be decoded")
    missing = [index for index in wanted.tolist() if index not in frames]
    if len(missing) > MAX_MISSING_FRAME_FRACTION * len(wanted):
        raise ClipRefused(
            f"truncated video: shorter than its audio; decoded {decoded} frames, "
            f"the window needs frame {int(wanted.max())} (header declares {declared})"
        )
    last = frames[max(frames)]
    return [frames.get(index, last) for index in wanted.tolist()]


def open_video(path: Path) -> cv2.VideoCapture:
    """A capture that decodes on one thread: `prepare` runs one process per core, and FFmpeg's own
    decoding threads would only contend with them (measured on a 480x360 clip: 38 ms of CPU with
    FFmpeg's threads, 32 ms with one, at about the same wall time)."""
    return cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])


def crop_faces(frames: list[np.ndarray], config: FeatureConfig, detector: cv2.CascadeClassifier) -> tuple[np.ndarray, bool]:
    """Crop every sampled frame with one face box; a centre crop when no face is found."""
    probe = np.linspace(0, len(frames) - 1, min(config.face_detections, len(frames))).round().astype(int)
    boxes = [box for index in probe if (box := detect_face(frames[index], detector, config.detection_height)) is not None]
    height, width = frames[0].shape[:2]
    if boxes:
        centre_x, centre_y, side = np.median(np.array(boxes, dtype=np.float64), axis=0)
        side *= 1 + config.face_margin
    else:
        centre_x, centre_y, side = width / 2, height / 2, 0.8 * min(height, width)
    crops = [crop_square(frame, centre_x, centre_y, side, config) for frame in frames]
    return np.stack(crops), bool(boxes)


def detect_face(frame: np.ndarray, detector: cv2.CascadeClassifier, detection_height: int) -> tuple[float, float, float] | None:
    """(centre x, centre y, side) of the largest face, in full-frame pixels, or None.

    Faces smaller than a sixth of the frame height are not searched for."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    scale = min(1.0, detection_height / grey.shape[0])
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(16, grey.shape[0] // 6)
    faces = detector.detectMultiScale(grey, scaleFactor=DETECTION_SCALE_STEP, minNeighbors=4, minSize=(min_side, min_side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    return ((x + w / 2) / scale, (y + h / 2) / scale, max(w, h) / scale)


def crop_square(frame: np.ndarray, centre_x: float, centre_y: float, side: float, config: FeatureConfig) -> np.ndarray:
    """A square crop resized to face_size, edges replicated where the box leaves the frame."""
    half = side / 2
    x0, y0 = int(round(centre_x - half)), int(round(centre_y - half))
    x1, y1 = int(round(centre_x + half)), int(round(centre_y + half))
    height, width = frame.shape[:2]
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = cv2.resize(frame[y0:y1, x0:x1], (config.face_size, config.face_size), interpolation=cv2.INTER_AREA)
    if config.color == "grey":
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[None] if crop.ndim == 3 else crop[None]
    else:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    return crop

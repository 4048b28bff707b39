"""Feature extraction: shapes, audio-video alignment, face crops, and every bad input's reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from avdisentangle.data.clip_errors import ClipRefused
from avdisentangle.data.faces import load_face_detector
from avdisentangle.data.features import FeatureConfig, extract_clip
from avdisentangle.data.records import ClipRecord
from tests.conftest import TINY_FEATURES


@pytest.fixture(scope="module")
def detector():
    return load_face_detector()


def record(audio: Path, video: Path) -> ClipRecord:
    return ClipRecord("clip", audio, video, speaker="1001", emotion="neutral")


def write_flash_clip(folder: Path, duration_s: float = 2.0, flash_s: float = 1.3, fps: int = 25, sr: int = 16000):
    """Silence with one loud beep at flash_s, and a video that is black except at flash_s."""
    t = np.arange(int(duration_s * sr)) / sr
    audio = np.where(np.abs(t - flash_s) < 0.05, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    sf.write(folder / "clip.wav", audio.astype(np.float32), sr, subtype="PCM_16")
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for index in range(int(duration_s * fps)):
        bright = abs((index + 0.5) / fps - flash_s) < 0.06
        writer.write(np.full((120, 160, 3), 255 if bright else 0, np.uint8))
    writer.release()
    return folder / "clip.wav", folder / "clip.avi"


def test_shapes_and_dtypes(tiny_corpus, detector):
    wav = sorted((tiny_corpus / "AudioWAV").glob("*.wav"))[0]
    features = extract_clip(record(wav, tiny_corpus / "VideoFlash" / f"{wav.stem}.flv"), TINY_FEATURES, detector)
    assert features.audio.shape == TINY_FEATURES.audio_shape == (32, 101)
    assert features.audio.dtype == np.float16
    assert features.video.shape == TINY_FEATURES.video_shape == (4, 1, 32, 32)
    assert features.video.dtype == np.uint8
    assert features.face_found


def test_rgb_crops_have_three_channels(tiny_corpus, detector):
    wav = sorted((tiny_corpus / "AudioWAV").glob("*.wav"))[0]
    config = FeatureConfig(window_s=1.0, num_frames=3, face_size=24, color="rgb")
    features = extract_clip(record(wav, tiny_corpus / "VideoFlash" / f"{wav.stem}.flv"), config, detector)
    assert features.video.shape == (3, 3, 24, 24)


def test_audio_and_video_share_one_timeline(tmp_path, detector):
    """The frame sampled nearest the beep is the bright one, and it lines up with the loud mel frames."""
    config = FeatureConfig(window_s=1.6, num_frames=16, face_size=16)
    features = extract_clip(record(*write_flash_clip(tmp_path, flash_s=1.25)), config, detector)
    # The 2.0 s clip is centre-cropped to 1.6 s: the window starts at 0.2 s, so the beep is 1.05 s into it,
    # the middle of the 11th of 16 frame slots.
    loud_frame = int(np.argmax(features.audio.astype(np.float32).mean(axis=0)))
    assert abs(loud_frame * config.hop_ms / 1000 - 1.05) < 0.06
    brightness = features.video.reshape(16, -1).mean(axis=1)
    assert int(np.argmax(brightness)) == 10
    assert (brightness > 128).sum() == 1
    assert not features.face_found  # a black frame has no face: centre-crop fallback


def test_short_clip_is_padded_or_refused(tmp_path, detector):
    audio, video = write_flash_clip(tmp_path, duration_s=1.2, flash_s=0.6)
    padded = extract_clip(record(audio, video), FeatureConfig(window_s=2.0, num_frames=4, face_size=16), detector)
    assert padded.audio.shape[1] == FeatureConfig(window_s=2.0).audio_frames
    assert float(padded.audio[:, -20:].max()) == -100.0  # zero padding at the end, nothing invented
    with pytest.raises(ClipRefused, match="shorter than the window.*< 2.0 s"):
        extract_clip(record(audio, video), FeatureConfig(window_s=2.0, short_clips="refuse"), detector)
    with pytest.raises(ClipRefused, match="shorter than min_duration_s"):
        extract_clip(record(audio, video), FeatureConfig(window_s=2.0, min_duration_s=1.5), detector)


def corrupt(tmp_path: Path, audio: Path, video: Path, which: str) -> tuple[Path, Path]:
    """Copies of a good clip with one defect."""
    bad_audio, bad_video = tmp_path / "bad.wav", tmp_path / f"bad{video.suffix}"
    shutil.copy(audio, bad_audio)
    shutil.copy(video, bad_video)
    if which == "empty wav":
        bad_audio.write_bytes(b"")
    elif which == "truncated wav":
        bad_audio.write_bytes(audio.read_bytes()[: audio.stat().st_size // 2])
    elif which == "garbage wav":
        bad_audio.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    elif which == "garbage video":
        bad_video.write_bytes(b"not a video" * 100)
    elif which == "truncated video":
        bad_video.write_bytes(video.read_bytes()[: video.stat().st_size // 4])
    return bad_audio, bad_video


@pytest.mark.parametrize(
    "defect, reason",
    [
        ("empty wav", "empty"),
        ("truncated wav", "truncated"),
        ("garbage wav", "no data chunk"),
        ("garbage video", "unreadable video"),
        ("truncated video", "truncated"),
    ],
)
def test_bad_input_is_refused_with_its_reason(tmp_path, detector, defect, reason):
    good = write_flash_clip(tmp_path, duration_s=2.0)
    with pytest.raises(ClipRefused, match=reason):
        extract_clip(record(*corrupt(tmp_path, *good, defect)), FeatureConfig(window_s=1.6), detector)


def test_config_validation():
    with pytest.raises(ValueError, match="short_clips"):
        FeatureConfig(short_clips="stretch")
    with pytest.raises(ValueError, match="color"):
        FeatureConfig(color="bgr")
    assert FeatureConfig().fingerprint() != FeatureConfig(n_mels=40).fingerprint()


def test_audio_outlasting_the_last_frame_by_a_fraction_is_not_truncation(tmp_path, detector):
    """1.31 s of audio at 30 fps ends 0.01 s into a 40th frame the video never had (it has 39)."""
    audio, video = write_flash_clip(tmp_path, duration_s=1.31, flash_s=0.5, fps=30)
    features = extract_clip(record(audio, video), FeatureConfig(window_s=2.0, num_frames=8, face_size=16), detector)
    assert features.video.shape[0] == 8

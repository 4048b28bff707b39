"""The built-in synthetic corpus: determinism, the entanglement knob, readable media, detectable faces."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from avdisentangle.data.corpora.cremad import EMOTION_CODES
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus

TINY = dict(num_speakers=3, clips_per_speaker=6, width=64, height=48, min_duration_s=0.5, max_duration_s=0.7)


def tiny(**overrides) -> SyntheticConfig:
    return SyntheticConfig(**{**TINY, **overrides})


def digests(root: Path) -> dict[str, str]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def counts_from_names(root: Path, config: SyntheticConfig) -> np.ndarray:
    """The (speaker, emotion) table as the file names on disk tell it, checking every clip has both files."""
    audio = {p.stem for p in (root / "AudioWAV").glob("*.wav")}
    video = {p.stem for p in (root / "VideoFlash").glob("*.flv")}
    assert audio == video
    counts = np.zeros((config.num_speakers, config.num_emotions), dtype=int)
    for stem in audio:
        actor, _sentence, emotion, _level = stem.split("_")
        counts[int(actor) - 1001, EMOTION_CODES.index(emotion)] += 1
    return counts


def cramers_v(counts: np.ndarray) -> float:
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / counts.sum()
    chi2 = ((counts - expected) ** 2 / np.where(expected > 0, expected, 1)).sum()
    return float(np.sqrt(chi2 / (counts.sum() * (min(counts.shape) - 1))))


def decode_all_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, SyntheticConfig]:
    """A small corpus at the default frame size, where faces are large enough for a Haar detector."""
    config = SyntheticConfig(num_speakers=3, clips_per_speaker=6, min_duration_s=1.0, max_duration_s=1.5)
    return generate_corpus(tmp_path_factory.mktemp("synthetic"), config, progress=False), config


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    a = digests(generate_corpus(tmp_path / "a", tiny(), progress=False))
    # 18 clips: two chunks in two processes
    b = digests(generate_corpus(tmp_path / "b", tiny(), progress=False, workers=2))
    c = digests(generate_corpus(tmp_path / "c", tiny(seed=1), progress=False))
    assert a == b
    assert len(a) == 2 * 3 * 6 + 1
    media = lambda d: {h for name, h in d.items() if name.endswith((".wav", ".flv"))}  # noqa: E731
    assert not media(a) & media(c)


def test_no_correlation_gives_a_uniform_joint_distribution(tmp_path):
    config = tiny(num_speakers=4, clips_per_speaker=12, speaker_emotion_correlation=0.0)
    counts = counts_from_names(generate_corpus(tmp_path, config, progress=False), config)
    assert (counts == 2).all()
    assert (counts == config.emotion_counts()).all()


def test_full_correlation_gives_each_speaker_two_emotions(tmp_path):
    config = tiny(num_speakers=4, clips_per_speaker=12, speaker_emotion_correlation=1.0)
    counts = counts_from_names(generate_corpus(tmp_path, config, progress=False), config)
    assert ((counts > 0).sum(axis=1) == 2).all()
    assert (counts.sum(axis=0) > 0).all(), "every emotion still appears somewhere"
    assert (counts == config.emotion_counts()).all()


def test_dependence_grows_with_the_knob(tmp_path):
    values = []
    for c in (0.0, 0.5, 1.0):
        config = tiny(num_speakers=4, clips_per_speaker=12, speaker_emotion_correlation=c)
        values.append(cramers_v(counts_from_names(generate_corpus(tmp_path / str(c), config, progress=False), config)))
    assert values[0] == pytest.approx(0.0)
    assert values[0] < values[1] < values[2]


def test_two_emotions_at_full_correlation_give_one_per_speaker():
    config = SyntheticConfig(num_speakers=4, num_emotions=2, clips_per_speaker=10, speaker_emotion_correlation=1.0)
    counts = config.emotion_counts()
    assert ((counts > 0).sum(axis=1) == 1).all()
    assert (counts.sum(axis=0) == 20).all()


def test_counts_rotate_extra_clips_when_not_divisible():
    counts = SyntheticConfig(num_speakers=6, clips_per_speaker=8).emotion_counts()
    assert (counts.sum(axis=1) == 8).all()
    assert (counts.sum(axis=0) == 8).all()


def test_media_are_readable_with_the_stated_format(corpus):
    root, config = corpus
    manifest = json.loads((root / "synthetic.json").read_text())
    assert len(manifest["clips"]) == 3 * 6
    for clip in manifest["clips"]:
        info = sf.info(str(root / "AudioWAV" / f"{clip['clip_id']}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == round(clip["duration_s"] * 16000)
        assert config.min_duration_s <= info.duration <= config.max_duration_s
        frames = decode_all_frames(root / "VideoFlash" / f"{clip['clip_id']}.flv")
        assert len(frames) == clip["num_frames"] == round(clip["duration_s"] * config.fps)
        assert frames[0].shape == (config.height, config.width, 3)


def test_mouth_follows_the_audio_envelope(corpus):
    root, config = corpus
    correlations = []
    for wav in sorted((root / "AudioWAV").glob("*.wav")):
        audio, rate = sf.read(str(wav))
        frames = decode_all_frames(root / "VideoFlash" / f"{wav.stem}.flv")
        hop = rate / config.fps
        loudness = [np.sqrt(np.mean(audio[int(i * hop) : int((i + 1) * hop)] ** 2)) for i in range(len(frames))]
        darkness = [(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) < 45).sum() for f in frames]
        correlations.append(np.corrcoef(loudness, darkness)[0, 1])
    assert np.mean(correlations) > 0.5


def test_haar_detector_finds_faces_on_most_frames(corpus):
    root, config = corpus
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = total = 0
    for flv in sorted((root / "VideoFlash").glob("*.flv")):
        for frame in decode_all_frames(flv)[::3]:
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            faces = detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=(config.height // 5,) * 2)
            found += len(faces) > 0
            total += 1
            for _x, _y, _w, h in faces:
                assert h < 0.8 * config.height, "the face should not fill the frame"
    assert found / total >= 0.85


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(speaker_emotion_correlation=1.5), "speaker_emotion_correlation"),
        (dict(speaker_emotion_correlation=-0.1), "speaker_emotion_correlation"),
        (dict(num_emotions=1), "num_emotions"),
        (dict(num_emotions=7), "num_emotions"),
        (dict(num_speakers=0), "num_speakers"),
        (dict(num_speakers=2.5), "integer"),
        (dict(min_duration_s=2.0, max_duration_s=1.0), "duration"),
        (dict(width=63), "width"),
        (dict(clips_per_speaker=6 * 49), "unique"),
        (dict(clips_per_speaker=100, speaker_emotion_correlation=1.0), "unique"),
    ],
)
def test_invalid_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**overrides)


def test_second_call_does_not_rewrite(corpus):
    root, config = corpus
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert generate_corpus(root, config, progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_another_config_is_not_mixed_into_a_finished_root(corpus):
    root, config = corpus
    with pytest.raises(ValueError, match="different synthetic corpus"):
        other = SyntheticConfig(num_speakers=3, clips_per_speaker=6, seed=config.seed + 1)
        generate_corpus(root, other, progress=False)


def test_fingerprint_is_stable_and_tracks_every_field():
    assert SyntheticConfig().fingerprint() == SyntheticConfig(speaker_emotion_correlation=0).fingerprint()
    assert SyntheticConfig().fingerprint() != SyntheticConfig(seed=1).fingerprint()
    assert SyntheticConfig().fingerprint() != SyntheticConfig(fps=25).fingerprint()

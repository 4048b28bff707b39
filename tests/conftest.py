"""Shared fixtures: one tiny synthetic corpus and its feature cache per test session."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Offline W&B runs that name no folder (the report's) and staged artifacts stay out of the repository and home.
_WANDB_SCRATCH = tempfile.mkdtemp(prefix="avdisentangle-tests-wandb-")
os.environ.setdefault("WANDB_DIR", _WANDB_SCRATCH)
os.environ.setdefault("WANDB_DATA_DIR", os.path.join(_WANDB_SCRATCH, "staging"))

from avdisentangle.data.features import FeatureConfig  # noqa: E402
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus  # noqa: E402

TINY_SYNTHETIC = SyntheticConfig(
    num_speakers=4, clips_per_speaker=12, min_duration_s=1.0, max_duration_s=1.4, speaker_emotion_correlation=0.5
)
TINY_FEATURES = FeatureConfig(window_s=1.0, n_mels=32, num_frames=4, face_size=32)


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine those threads stall (10x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 48-clip synthetic corpus in the CREMA-D layout (generated once per session)."""
    return generate_corpus(tmp_path_factory.mktemp("tiny") / "corpus", TINY_SYNTHETIC, progress=False)


RAVDESS_EMOTION_CODES = {"ANG": "05", "DIS": "07", "FEA": "06", "HAP": "03", "NEU": "01", "SAD": "04"}


def write_ravdess_copy(cremad_root, target, speakers: int = 2):
    """The first speakers of a CREMA-D-layout corpus re-written in the RAVDESS layout:
    48 kHz stereo `03-*.wav` audio-only files beside `02-*.mp4` video-only files."""
    import itertools

    import cv2
    import librosa
    import numpy as np
    import soundfile as sf

    combos: dict[tuple[str, str], itertools.count] = {}
    actors = sorted({p.name.split("_")[0] for p in (cremad_root / "AudioWAV").glob("*.wav")})[:speakers]
    for actor_index, actor in enumerate(actors, start=1):
        folder = target / f"Actor_{actor_index:02d}"
        folder.mkdir(parents=True)
        for wav in sorted((cremad_root / "AudioWAV").glob(f"{actor}_*.wav")):
            emotion = RAVDESS_EMOTION_CODES[wav.stem.split("_")[2]]
            slot = next(combos.setdefault((actor, emotion), itertools.count()))
            intensity, statement, repetition = (f"{1 + (slot >> bit & 1):02d}" for bit in (2, 1, 0))
            if emotion == "01" and intensity == "02":
                continue  # RAVDESS has no strong neutral
            stem = f"01-{emotion}-{intensity}-{statement}-{repetition}-{actor_index:02d}"
            audio, sr = sf.read(wav)
            audio = librosa.resample(audio, orig_sr=sr, target_sr=48000)
            sf.write(folder / f"03-{stem}.wav", np.stack([audio, audio], axis=1), 48000, subtype="PCM_16")
            capture = cv2.VideoCapture(str(cremad_root / "VideoFlash" / f"{wav.stem}.flv"))
            fps, size = capture.get(cv2.CAP_PROP_FPS), (int(capture.get(3)), int(capture.get(4)))
            writer = cv2.VideoWriter(str(folder / f"02-{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                writer.write(frame)
            writer.release()
    return target


SPEECH_MODEL_HIDDEN, SPEECH_MODEL_LAYERS = 32, 2


@pytest.fixture(scope="session")
def speech_model(tmp_path_factory):
    """A 2-layer, 32-wide random Wav2Vec2 and its feature extractor, saved as a real checkpoint folder is.
    Layer-normed, with attention masks (as WavLM and wav2vec 2.0 large are): padding cannot reach real frames."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=SPEECH_MODEL_HIDDEN,
        num_hidden_layers=SPEECH_MODEL_LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )
    folder = tmp_path_factory.mktemp("speech_model")
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


@pytest.fixture
def offline_hub(monkeypatch):
    """The hub forced offline, and any network connection an error."""

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)

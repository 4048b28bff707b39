"""eGeMAPS and frozen speech-model features: cached once, checked, offline, and a bad model folder refused in one line.

A tiny random Wav2Vec2 saved with `save_pretrained` stands in for a real checkpoint; every test here
runs with the hub forced offline and any socket connection failing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from avdisentangle.cli import main
from avdisentangle.data.cache import FeatureCache
from avdisentangle.data.cache_integrity import damage
from avdisentangle.data.corpora.loose import read_loose_files
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.extraction import extract_in_memory
from avdisentangle.data.features import FeatureConfig, audio_features
from avdisentangle.data.ssl_features import SpeechEmbedder, SSLConfig
from tests.conftest import SPEECH_MODEL_HIDDEN as HIDDEN
from tests.conftest import SPEECH_MODEL_LAYERS as LAYERS
from tests.helpers import ENV, FEATURE_ARGS, prepare_command

pytestmark = pytest.mark.usefixtures("offline_hub")


def prepare(capsys, corpus, cache_dir, *args: str) -> FeatureCache:
    options = ["--data.corpus=cremad", f"--data.root={corpus}", f"--data.cache_dir={cache_dir}"]
    options += ["--data.prepare_workers=0", "--data.progress=false", *FEATURE_ARGS, *args]
    assert main(["prepare", *options]) == 0
    return FeatureCache.open(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("cache: "))


def test_egemaps_cache_holds_88_functionals_per_clip(capsys, tiny_corpus, tmp_path):
    cache = prepare(capsys, tiny_corpus, tmp_path / "cache", "--data.features.audio=egemaps")
    assert cache.audio.shape == (48, 88) and cache.audio.dtype == np.float32
    assert np.isfinite(cache.audio).all() and cache.audio.std(axis=0).max() > 0  # clips differ
    assert cache.video.shape[0] == 48 and damage(cache.path) is None
    datamodule = AVDataModule.from_cache(cache.path, batch_size=8).ready()
    assert datamodule.audio_shape == (88,)
    assert next(iter(datamodule.train_dataloader()))["audio"].shape == (8, 88)

    broken = np.load(cache.path / "audio.npy", mmap_mode="r+")
    broken[5, 3] = np.nan
    broken.flush()
    assert "audio.npy holds non-finite values (row 5)" in damage(cache.path)


def test_egemaps_ignores_the_padding_of_a_short_clip():
    """A 0.8 s clip in a 1 s and in a 2 s window: the same functionals (padding with silence would change them)."""
    waveform = np.random.default_rng(0).normal(0, 0.1, 12800).astype(np.float32)
    in_short, samples = audio_features(waveform, 0.0, FeatureConfig(audio="egemaps", window_s=1.0))
    in_long, _ = audio_features(waveform, 0.0, FeatureConfig(audio="egemaps", window_s=2.0))
    assert samples == 12800 and np.array_equal(in_short, in_long)


@pytest.mark.parametrize("pooling, rows", [("stats", 2), ("segments", 3)])
def test_ssl_cache_holds_every_layer_summarised(capsys, tiny_corpus, tmp_path, speech_model, pooling, rows):
    model = shutil.copytree(speech_model, tmp_path / "model")
    settings = [f"--data.features.ssl.path={model}", f"--data.features.ssl.pooling={pooling}"]
    settings += ["--data.features.ssl.segments=3", "--data.features.modalities=audio"]
    cache = prepare(capsys, tiny_corpus, tmp_path / "cache", "--data.features.audio=ssl", *settings)
    assert cache.audio.shape == (48, LAYERS + 1, rows, HIDDEN) and cache.audio.dtype == np.float16
    assert np.isfinite(cache.audio).all() and cache.video is None
    if pooling == "stats":
        assert (cache.audio[:, :, 1] >= 0).all()  # row 1 is a standard deviation
    shutil.rmtree(model)  # a finished cache is read without its model folder
    assert damage(cache.path) is None
    datamodule = AVDataModule.from_cache(cache.path, batch_size=8).ready()
    assert datamodule.audio_shape == (LAYERS + 1, rows, HIDDEN)
    assert next(iter(datamodule.val_dataloader()))["audio"].shape[1:] == (LAYERS + 1, rows, HIDDEN)


@pytest.mark.parametrize("pooling", ["stats", "segments"])
def test_ssl_statistics_leave_out_the_padding(speech_model, pooling):
    """A 0.5 s clip zero-padded to 1 s summarises as the clip alone does; averaging the padding frames in
    would move the mean and the segments (the padded half of the window becomes the last segments)."""
    embed = SpeechEmbedder(SSLConfig(path=str(speech_model), pooling=pooling, segments=3))
    clip = np.random.default_rng(1).normal(0, 0.1, 8000).astype(np.float32)
    alone = embed(clip[None], np.array([8000]))
    padded = embed(np.pad(clip, (0, 8000))[None], np.array([8000]))
    assert alone.shape == padded.shape == (1, LAYERS + 1, 2 if pooling == "stats" else 3, HIDDEN)
    np.testing.assert_allclose(padded.astype(np.float32), alone.astype(np.float32), atol=2e-2, rtol=2e-2)
    with_padding_counted = embed(np.pad(clip, (0, 8000))[None], np.array([16000]))
    assert np.abs(with_padding_counted.astype(np.float32) - alone).max() > 0.1


def test_ssl_cache_name_follows_the_model_content(speech_model, tmp_path):
    """The cache is named after config.json and the weights (size and time), not the batch size or
    device; the log-mel default keeps the name its caches already have."""
    model = shutil.copytree(speech_model, tmp_path / "model")
    settings = SSLConfig(path=str(model))
    base = FeatureConfig(audio="ssl", ssl=settings).fingerprint()
    assert FeatureConfig(audio="ssl", ssl=SSLConfig(path=str(model), batch_size=3, device="cpu")).fingerprint() == base
    assert FeatureConfig(audio="ssl", ssl=SSLConfig(path=str(model), pooling="segments")).fingerprint() != base
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    retouched = FeatureConfig(audio="ssl", ssl=settings).fingerprint()
    assert retouched != base
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "layerdrop": 0.0}))
    assert FeatureConfig(audio="ssl", ssl=settings).fingerprint() not in (base, retouched)
    assert FeatureConfig().fingerprint() == "9cbcfad71f"  # the name every default log-mel cache has had


def test_loose_files_are_embedded_in_memory(tiny_corpus, speech_model):
    """predict on files outside any corpus: eGeMAPS and ssl features extracted without a cache."""
    wavs = sorted((tiny_corpus / "AudioWAV").glob("*.wav"))[:3]
    for config, shape in (
        (FeatureConfig(modalities="audio", audio="egemaps"), (88,)),
        (FeatureConfig(modalities="audio", audio="ssl", ssl=SSLConfig(path=str(speech_model))), (3, 2, HIDDEN)),
    ):
        table, refused = extract_in_memory(read_loose_files(wavs, config.modality_names), config)
        assert table.audio.shape == (3, *shape) and not refused


def test_a_bad_model_folder_is_one_line_and_exit_2(capsys, tiny_corpus, speech_model, tmp_path):
    """Through the real command line: no folder, a folder without weights; in process: a model that is not
    a speech model."""
    from transformers import BertConfig, BertModel

    no_weights = shutil.copytree(speech_model, tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    for folder, message in ((tmp_path / "nowhere", "does not exist"), (no_weights, "has no weights")):
        args = ["--data.features.audio=ssl", f"--data.features.ssl.path={folder}", f"--data.cache_dir={tmp_path}/c"]
        command = prepare_command(tiny_corpus, "--data.prepare_workers=0", *args)
        offline = {**ENV, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(command, cwd=tmp_path, env=offline, capture_output=True, text=True)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: ssl model folder {folder}") and message in lines[0]

    text_model = tmp_path / "text_model"
    text_config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(text_config).save_pretrained(text_model)
    capsys.readouterr()  # transformers' progress bars
    options = [f"--data.root={tiny_corpus}", f"--data.cache_dir={tmp_path}/c", "--data.features.audio=ssl"]
    assert main(["prepare", "--data.corpus=cremad", *options, f"--data.features.ssl.path={text_model}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: ssl model folder {text_model} holds a BertModel, not a speech model that reads "
                     "waveforms (wav2vec 2.0, HuBERT, WavLM)"]


def test_log_mel_transforms_are_refused_on_other_features():
    """Speaker normalisation and SpecAugment act on mel bins and frames, which eGeMAPS and ssl arrays lack."""
    from avdisentangle.data.augment import AudioAugment
    from avdisentangle.errors import UserError

    with pytest.raises(UserError, match="speaker_norm and augment act on the log-mel; features.audio is egemaps"):
        AVDataModule(features=FeatureConfig(audio="egemaps"), speaker_norm=True)
    with pytest.raises(UserError, match="features.audio is ssl"):
        AVDataModule(features=FeatureConfig(audio="ssl"), augment=AudioAugment(freq_masks=2, freq_mask_bins=4))

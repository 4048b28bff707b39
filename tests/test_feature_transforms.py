"""What the DataModule may do to the cached log-mel on its way to the model: training-time augmentation
(random crops, SpecAugment masks) and speaker normalisation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from avdisentangle.data.augment import AudioAugment
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.speaker_norm import SpeakerNormaliser
from avdisentangle.errors import UserError


def ramp_batch(batch: int = 4, mels: int = 8, frames: int = 50) -> torch.Tensor:
    """Log-mel whose value is its frame index, so a crop reveals its offset."""
    return torch.arange(frames, dtype=torch.float32).expand(batch, 1, mels, frames).clone()


def test_a_random_crop_keeps_consecutive_frames_from_an_offset_of_its_own():
    torch.manual_seed(0)
    cropped = AudioAugment(crop_s=0.2)(ramp_batch(batch=16), hop_ms=10.0)  # 20 of 50 frames
    assert cropped.shape == (16, 1, 8, 20)
    starts = cropped[:, 0, 0, 0]
    assert torch.equal(cropped[:, 0, 3], starts[:, None] + torch.arange(20.0))  # consecutive, every bin alike
    assert len(set(starts.tolist())) > 4 and 0 <= starts.min() and starts.max() <= 30


def test_masks_fill_whole_bands_and_spans_with_the_clip_mean_and_nothing_else():
    torch.manual_seed(0)
    audio = torch.randn(32, 1, 16, 40) * 10 - 50
    masked = AudioAugment(freq_masks=2, freq_mask_bins=3, time_masks=1, time_mask_s=0.05)(audio, hop_ms=10.0)
    changed = masked != audio
    mean = audio.mean(dim=(2, 3), keepdim=True).expand_as(audio)
    assert torch.equal(masked[changed], mean[changed])
    bands = changed[:, 0].all(dim=2)  # (clip, bin): masked over every frame
    spans = changed[:, 0].all(dim=1)  # (clip, frame): masked over every bin
    assert torch.equal(changed[:, 0], bands[:, :, None] | spans[:, None, :])  # whole bands and spans, nothing else
    assert bands.sum(dim=1).max() <= 6 and spans.sum(dim=1).max() <= 5  # 2 masks of <= 3 bins, 1 of <= 5 frames
    assert bands.any() and spans.any()


def test_augmentation_is_off_by_default_checked_and_only_for_training_batches(tmp_path):
    assert not AudioAugment().active
    with pytest.raises(UserError, match="crop_s must be positive"):
        AudioAugment(crop_s=0)
    with pytest.raises(UserError, match="time_masks must be at least 0"):
        AudioAugment(time_masks=-1)
    datamodule = AVDataModule(cache_dir=str(tmp_path), augment=AudioAugment(crop_s=0.1))
    batch = {"audio": ramp_batch(), "emotion": torch.zeros(4)}
    for training, frames in ((True, 5), (False, 50)):  # base features: 20 ms hops, so 0.1 s is 5 frames
        datamodule.trainer = SimpleNamespace(training=training)
        datamodule.features = SimpleNamespace(hop_ms=20.0)
        assert datamodule.on_after_batch_transfer(batch, 0)["audio"].shape[-1] == frames


def two_speakers(frames: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Speaker a is 20 dB louder and twice as varied as speaker b in every bin; a's last clip is half padding."""
    rng = np.random.default_rng(0)
    a = rng.normal(-30, 8, (6, 4, frames))
    b = rng.normal(-50, 4, (6, 4, frames))
    a[-1, :, frames // 2 :] = -100.0  # zero padding of a short clip: not a speaker statistic
    return np.concatenate([a, b]).astype(np.float16), np.array(["a"] * 6 + ["b"] * 6)


def test_speaker_normalisation_brings_every_speaker_to_the_corpus_mean_and_spread():
    audio, speakers = two_speakers()
    normaliser = SpeakerNormaliser.fit(audio, speakers)
    out = normaliser(audio.astype(np.float32), np.arange(12))
    valid = audio > -99
    # The corpus: mean about -40 dB, spread within speakers (8 and 4) and between them (20 dB apart).
    assert normaliser.corpus_mean.mean() == pytest.approx(-40, abs=1) and 10 < normaliser.corpus_std.mean() < 13
    for name in ("a", "b"):
        values = out[speakers == name][valid[speakers == name]]
        assert values.mean() == pytest.approx(normaliser.corpus_mean.mean(), abs=0.5)
        assert values.std() == pytest.approx(normaliser.corpus_std.mean(), rel=0.05)
    assert np.all(out[~valid] == -100.0)  # padding stays padding
    plain = [audio[speakers == name][valid[speakers == name]].astype(np.float32).mean() for name in ("a", "b")]
    assert plain[0] - plain[1] == pytest.approx(20, abs=1)  # the baseline it removed


def test_clips_of_an_unknown_speaker_are_normalised_to_the_training_corpus():
    audio, speakers = two_speakers()
    normaliser = SpeakerNormaliser.fit(audio, speakers)
    new = (np.asarray(audio[6:], dtype=np.float32) - 30).astype(np.float16)  # a quieter speaker than any seen
    loose = normaliser.for_clips(new, np.full(6, -1))
    out = loose(new.astype(np.float32), np.arange(6))
    assert out.mean() == pytest.approx(float(normaliser.corpus_mean.mean()), abs=1.5)

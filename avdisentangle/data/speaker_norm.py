"""Speaker normalisation of the log-mel: each speaker's features brought to the corpus's mean and spread.

Emotion in speech is heard against the speaker's own baseline: a high pitch or a loud voice means
little until one knows how that person usually sounds. A model trained on a few speakers learns
their baselines along with the emotion and misreads a new speaker's. Standardising each mel bin per
speaker (Busso et al. 2011, "Iterative feature normalization scheme for automatic emotion detection
from speech") removes the baseline before the model sees it:

    x' = (x - mean_speaker) / std_speaker * std_corpus + mean_corpus      (per mel bin)

The statistics need no labels, only which clips share a speaker: at test time an unseen speaker's own
(unlabelled) clips give theirs, as in the published protocols that use it; mapping back to the corpus's
mean and spread keeps the values on the dB scale the encoders expect. Zero-padded frames (a short clip
in a longer window, -100 dB) do not count. Loose clips given to `predict` (speaker unknown) form one
group, so predict on one speaker's clips at a time to normalise them as that speaker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PADDING_DB = -99.0  # log-mel of digital silence is -100 dB (librosa's amin 1e-10); such frames are padding


@dataclass
class SpeakerNormaliser:
    """Per-speaker mean and scale of every mel bin, and each cached row's speaker."""

    group: np.ndarray  # (N,) the speaker of each row, as an index into `mean` and `std`
    mean: np.ndarray  # (S, n_mels)
    std: np.ndarray  # (S, n_mels)
    corpus_mean: np.ndarray  # (n_mels,): the target every speaker is brought to
    corpus_std: np.ndarray  # (n_mels,)

    @classmethod
    def fit(cls, audio: np.ndarray, speakers: np.ndarray) -> SpeakerNormaliser:
        """Statistics of `audio` (N, n_mels, frames) in dB, per speaker (`speakers`, any labels) and overall."""
        group, mean, std, counts = speaker_statistics(audio, speakers)
        total = counts.sum(axis=0)
        corpus_mean = (mean * counts).sum(axis=0) / total
        corpus_std = np.sqrt(((std**2 + mean**2) * counts).sum(axis=0) / total - corpus_mean**2)
        return cls(group, mean, std, corpus_mean.astype(np.float32), corpus_std.astype(np.float32))

    def for_clips(self, audio: np.ndarray, speakers: np.ndarray) -> SpeakerNormaliser:
        """Other clips (loose files to predict on) normalised per speaker to this corpus's target, which
        the model was trained on."""
        group, mean, std, _ = speaker_statistics(audio, speakers)
        return SpeakerNormaliser(group, mean, std, self.corpus_mean, self.corpus_std)

    def __call__(self, audio: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Normalised float32 log-mel of `rows` (B, n_mels, frames); padding stays padding."""
        group = self.group[rows]
        scale = self.corpus_std / self.std[group]
        normalised = (audio - self.mean[group, :, None]) * scale[:, :, None] + self.corpus_mean[:, None]
        return np.where(audio > PADDING_DB, normalised, audio).astype(np.float32)


def speaker_statistics(audio: np.ndarray, speakers: np.ndarray) -> tuple[np.ndarray, ...]:
    """(each row's speaker index, per-speaker mean and std of every mel bin, frame counts) over the frames
    that are not padding; read in chunks, so a CREMA-D-sized cache is never in memory whole."""
    names, group = np.unique(speakers, return_inverse=True)
    sums = np.zeros((len(names), audio.shape[1]))
    squares, counts = np.zeros_like(sums), np.zeros_like(sums)
    for start in range(0, len(audio), 256):
        chunk = np.asarray(audio[start : start + 256], dtype=np.float64)
        valid = chunk > PADDING_DB
        values = np.where(valid, chunk, 0.0)
        rows = group[start : start + 256]
        np.add.at(sums, rows, values.sum(axis=2))
        np.add.at(squares, rows, (values**2).sum(axis=2))
        np.add.at(counts, rows, valid.sum(axis=2))
    counts = np.maximum(counts, 1)
    mean = sums / counts
    std = np.sqrt(np.maximum(squares / counts - mean**2, 1e-6))
    return group, mean.astype(np.float32), std.astype(np.float32), counts

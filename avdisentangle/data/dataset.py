"""Batches from a feature table: a whole batch is one fancy-index gather of the (memory-mapped) arrays.

Under DDP, evaluation clips are split across processes without padding (`evaluation_sampler`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset

from avdisentangle.data.extraction import FeatureTable
from avdisentangle.data.speaker_norm import SpeakerNormaliser


class CachedClips(Dataset):
    """Rows of a feature table (the cache, or loose clips) as samples; `__getitems__` gathers a whole batch at once.
    With a `normaliser`, each clip's log-mel is normalised for its speaker (`speaker_norm.py`)."""

    def __init__(
        self,
        table: FeatureTable,
        indices: np.ndarray,
        emotion_ids: np.ndarray,
        speaker_ids: np.ndarray,
        normaliser: SpeakerNormaliser | None = None,
    ):
        self.table = table
        self.indices = indices
        self.emotion_ids = emotion_ids
        self.speaker_ids = speaker_ids
        self.normaliser = normaliser

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([position]).items()}

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        """The batch contract: `audio` float32, (B, 1, n_mels, frames) for the log-mel, (B, 88) for eGeMAPS,
        (B, L, K, D) for ssl, and `video` (B, T, C, S, S) uint8, each only when the table holds that modality,
        then the labels and row indices."""
        rows = self.indices[np.asarray(positions)]
        features = {}
        if self.table.audio is not None:
            audio = self.table.audio[rows].astype(np.float32)
            audio = audio if self.normaliser is None else self.normaliser(audio, rows)
            features["audio"] = torch.from_numpy(audio).reshape(len(rows), *audio_input_shape(audio.shape[1:]))
        if self.table.video is not None:
            features["video"] = torch.from_numpy(np.ascontiguousarray(self.table.video[rows]))
        return {
            **features,
            "emotion": torch.from_numpy(self.emotion_ids[rows]),
            "speaker": torch.from_numpy(self.speaker_ids[rows]),
            "index": torch.from_numpy(rows.astype(np.int64)),
        }


def keep_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Collate for datasets that already return whole batches."""
    return batch


def evaluation_sampler(dataset: Dataset) -> UnrepeatedDistributedSampler | None:
    """Under DDP, split evaluation clips across processes without padding.

    Lightning's default DistributedSampler repeats clips to even out the processes, and the
    repeats would be counted twice by the (synced) metrics; the training split keeps that default.
    """
    if (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    ):
        return UnrepeatedDistributedSampler(dataset, shuffle=False)
    return None


def audio_input_shape(clip_shape: Sequence[int]) -> tuple[int, ...]:
    """One clip's `audio` in a batch: a log-mel (2-D) gains a channel axis for the 2-D CNN encoders, the
    eGeMAPS vector and the ssl summaries (their encoders read them as they are) do not."""
    return (1, *clip_shape) if len(clip_shape) == 2 else tuple(clip_shape)

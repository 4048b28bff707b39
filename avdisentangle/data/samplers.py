"""How training clips are drawn into batches: shuffled (the default), or P speakers x K clips each.

Per-emotion estimates (conditional HSIC, batch statistics) and the speaker adversaries learn from
clips of one speaker inside a batch; a random batch of 64 from 24 speakers holds fewer than 3 clips
of any one speaker on average. A speaker-balanced ("PK") batch, as in metric learning, holds K clips
of each of P speakers (`data.speakers_per_batch`). Evaluation batches are not drawn here (`dataset.py`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from avdisentangle.errors import UserError


def check_batch_shape(batch_size: int, speakers_per_batch: int | None) -> None:
    """The settings alone: P speakers of K clips each must make up exactly `batch_size` clips."""
    if speakers_per_batch is None:
        return
    if speakers_per_batch < 1:
        raise UserError(f"data.speakers_per_batch must be at least 1 (null: shuffled clips), got {speakers_per_batch}")
    if batch_size < speakers_per_batch or batch_size % speakers_per_batch:
        raise UserError(
            f"data.batch_size={batch_size} must be a multiple of data.speakers_per_batch={speakers_per_batch}: "
            "each batch holds the same number of clips of each of its speakers"
        )


class SpeakerBalancedBatchSampler(Sampler[list[int]]):
    """Batches of `speakers_per_batch` speakers x `batch_size // speakers_per_batch` clips each.

    `speakers` is the speaker of each dataset position (the training split's). Each epoch deals every
    speaker's clips, shuffled, into groups of K; each batch takes one group from each of P speakers,
    those with the most groups left first (ties at random), which uses up every group when no speaker
    holds more than its share. So no clip repeats within an epoch unless the speakers are too few or too
    unbalanced for the epoch's batches: a speaker whose groups run out while fewer than P speakers have
    any left is dealt again. A speaker with fewer than K clips fills its group by repeating them. The
    fewer than K clips left over from a dealing wait for a later epoch's shuffle.

    An epoch has clips // batch_size batches, the plain loader's full batches. Its batches depend only on
    (seed, epoch): Lightning calls `set_epoch` at every epoch start, so a resumed run sees the batches an
    uninterrupted one would have.
    """

    def __init__(self, speakers: np.ndarray, batch_size: int, speakers_per_batch: int, seed: int = 0):
        check_batch_shape(batch_size, speakers_per_batch)
        speakers = np.asarray(speakers)
        names = np.unique(speakers)
        if speakers_per_batch > len(names):
            raise UserError(
                f"data.speakers_per_batch={speakers_per_batch} but the training split has {len(names)} speakers"
            )
        if len(speakers) < batch_size:
            raise UserError(
                f"data.speakers_per_batch needs one full batch: the training split has {len(speakers)} clips, "
                f"data.batch_size is {batch_size}"
            )
        self.clips_of = [np.flatnonzero(speakers == name) for name in names]
        self.speakers_per_batch = speakers_per_batch
        self.clips_per_speaker = batch_size // speakers_per_batch
        self.num_batches = len(speakers) // batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> SpeakerBalancedBatchSampler:
        """Lightning sets the epoch through `batch_sampler.sampler.set_epoch` (torch's BatchSampler wraps the
        sampler that shuffles); here the batch sampler shuffles, so that call must reach it."""
        return self

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        groups = [deque(self.deal(speaker, rng)) for speaker in range(len(self.clips_of))]
        batches = []
        for _ in range(self.num_batches):
            if sum(1 for left in groups if left) < self.speakers_per_batch:
                for speaker, left in enumerate(groups):
                    if not left:
                        left.extend(self.deal(speaker, rng))
            most_left_first = np.lexsort((rng.random(len(groups)), [-len(left) for left in groups]))
            chosen = most_left_first[: self.speakers_per_batch]
            batches.append([int(position) for speaker in chosen for position in groups[speaker].popleft()])
        for index in rng.permutation(len(batches)):
            yield batches[index]

    def deal(self, speaker: int, rng: np.random.Generator) -> list[np.ndarray]:
        """One speaker's clips, shuffled, in groups of K (padded by repeats when it has fewer than K)."""
        clips, size = rng.permutation(self.clips_of[speaker]), self.clips_per_speaker
        if len(clips) < size:
            clips = np.concatenate([clips, rng.choice(clips, size - len(clips))])
        return [clips[start : start + size] for start in range(0, len(clips) - size + 1, size)]


def training_batches(
    speakers: np.ndarray, batch_size: int, speakers_per_batch: int | None, seed: int, world_size: int
) -> dict[str, Any]:
    """The training DataLoader's batching arguments: clips shuffled by a generator of `seed` (the default),
    or speaker-balanced batches, which Lightning cannot shard across DDP processes (it shards samplers of
    single clips), so they are refused there rather than repeated on every process."""
    if speakers_per_batch is None:
        return {"batch_size": batch_size, "shuffle": True, "generator": torch.Generator().manual_seed(seed)}
    if world_size > 1:
        raise UserError(
            f"data.speakers_per_batch runs in one process; this run has {world_size} (DDP), across which Lightning "
            "cannot split speaker-balanced batches: unset data.speakers_per_batch or train on one device"
        )
    return {"batch_sampler": SpeakerBalancedBatchSampler(speakers, batch_size, speakers_per_batch, seed)}

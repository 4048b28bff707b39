"""Training-time augmentation of the log-mel: random time crops and SpecAugment's masks.

Real emotional-speech corpora are small (RAVDESS speech: 1,440 clips of 24 actors), and a model
trained on the same centred window of every clip, epoch after epoch, learns the clips rather than the
emotion. Two cheap, standard remedies, applied to a batch on its device after transfer (the
DataModule's `on_after_batch_transfer`, training batches only, so validation, test, predict and
export see the cached features unchanged):

- a random crop of `crop_s` seconds from the cached window (each clip its own offset); the encoders
  pool over time, so evaluation reads the whole window;
- SpecAugment's frequency and time masks (Park et al. 2019), each filled with the clip's mean level.

Randomness comes from torch's global generator, so `seed_everything` makes runs repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avdisentangle.errors import UserError


@dataclass(frozen=True)
class AudioAugment:
    """What to do to each training clip's log-mel; the defaults do nothing.

    Args:
        crop_s: keep a random `crop_s`-second span of the cached window (None: the whole window).
        freq_masks: frequency masks per clip, each up to `freq_mask_bins` mel bins wide.
        time_masks: time masks per clip, each up to `time_mask_s` seconds wide.
    """

    crop_s: float | None = None
    freq_masks: int = 0
    freq_mask_bins: int = 0
    time_masks: int = 0
    time_mask_s: float = 0.0

    def __post_init__(self):
        if self.crop_s is not None and self.crop_s <= 0:
            raise UserError(f"augment.crop_s must be positive (or null for no crop), got {self.crop_s}")
        for name in ("freq_masks", "freq_mask_bins", "time_masks", "time_mask_s"):
            if getattr(self, name) < 0:
                raise UserError(f"augment.{name} must be at least 0, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return self.crop_s is not None or self.freq_masks * self.freq_mask_bins > 0 or self.time_masks > 0

    def __call__(self, audio: Tensor, hop_ms: float) -> Tensor:
        """A new batch (B, 1, n_mels, frames): cropped, then masked."""
        frames_per_s = 1000.0 / hop_ms
        if self.crop_s is not None:
            audio = random_crop(audio, max(1, round(self.crop_s * frames_per_s)))
        fill = audio.mean(dim=(2, 3), keepdim=True)
        if self.freq_masks and self.freq_mask_bins:
            audio = apply_masks(audio, fill, self.freq_masks, self.freq_mask_bins, dim=2)
        time_width = round(self.time_mask_s * frames_per_s)
        if self.time_masks and time_width:
            audio = apply_masks(audio, fill, self.time_masks, time_width, dim=3)
        return audio


def random_crop(audio: Tensor, frames: int) -> Tensor:
    """`frames` consecutive frames of each clip from a random offset (the whole clip when it is shorter)."""
    total = audio.shape[-1]
    if frames >= total:
        return audio
    offsets = torch.randint(0, total - frames + 1, (audio.shape[0],), device=audio.device)
    index = offsets[:, None] + torch.arange(frames, device=audio.device)
    return torch.gather(audio, 3, index[:, None, None, :].expand(-1, audio.shape[1], audio.shape[2], -1))


def apply_masks(audio: Tensor, fill: Tensor, count: int, max_width: int, dim: int) -> Tensor:
    """`count` masks per clip along `dim` (2: mel bins, 3: frames), each of a width drawn from 0..max_width."""
    size, batch = audio.shape[dim], audio.shape[0]
    widths = torch.randint(0, min(max_width, size) + 1, (batch, count), device=audio.device)
    starts = (torch.rand(batch, count, device=audio.device) * (size - widths + 1)).long()
    positions = torch.arange(size, device=audio.device)
    masked = ((positions >= starts[..., None]) & (positions < (starts + widths)[..., None])).any(dim=1)  # (B, size)
    shape = [batch, 1, 1, 1]
    shape[dim] = size
    return torch.where(masked.view(shape), fill, audio)

"""Modality encoders: plain nn.Modules that turn one modality into a vector and a token sequence.

These are the small, CPU-friendly defaults; `resnet.py` holds the wider ResNet-18 choice, and the
model takes either as an injected factory (`factories.py`). Both pool adaptively, so they accept any
number of mel bins, audio frames, video frames and frame sizes; only the number of video channels is
fixed at construction. Each returns the pooled vector (for concatenation fusion) and the per-time-step
tokens (for attention fusion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

# The cache's log-mel values lie roughly in [-80, +20] dB; this fixed affine map brings them near
# [-1, 1] without depending on batch statistics, so evaluation is sound from the first step and
# loudness (a cue for arousal) is kept, which per-clip normalisation would erase.
DB_OFFSET = 40.0
DB_SCALE = 40.0


class Encoded(NamedTuple):
    """One modality's encoding: pooled (B, D) and tokens (B, L, D)."""

    pooled: Tensor
    tokens: Tensor


def conv_block(in_channels: int, out_channels: int, strided: bool) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU, halving height and width (never below 1).

    A strided block downsamples in the conv itself; the others keep full resolution through the
    conv and max-pool after it. Striding the first block quarters the cost of the most expensive
    layer (measured: about 2x faster encoders on CPU).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2 if strided else 1, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if not strided:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


def conv_stack(in_channels: int, channels: Sequence[int]) -> nn.Sequential:
    """A chain of conv blocks with the given widths, the first one strided.

    Its weights are channels-last, so every conv, batch norm and max-pool after them runs on channels-last
    activations: a training step of the benchmark's model took 36% less time on one CPU core, the max-pool
    most of all (benchmarks/memory_format.py). Loading a checkpoint copies into these weights and keeps it."""
    widths = [in_channels, *channels]
    blocks = (conv_block(a, b, strided=i == 0) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))
    return nn.Sequential(*blocks).to(memory_format=torch.channels_last)


class TemporalHead(nn.Module):
    """Sequence (B, C, L) -> tokens by a light temporal conv, pooled by mean and max over time.

    Mean keeps the overall tone of a clip, max keeps short salient events (a shout, a frown).
    """

    def __init__(self, in_channels: int, out_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.temporal = nn.Sequential(
            nn.Conv1d(in_channels, out_dim, kernel_size, padding=kernel_size // 2),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.Linear(2 * out_dim, out_dim)

    def forward(self, sequence: Tensor) -> Encoded:
        hidden = self.temporal(sequence)
        pooled = self.pool(torch.cat([hidden.mean(dim=2), hidden.amax(dim=2)], dim=1))
        return Encoded(pooled=pooled, tokens=hidden.transpose(1, 2))


class AudioEncoder(nn.Module):
    """Log-mel (B, 1, n_mels, n_frames) in dB -> Encoded with one token per pooled audio frame."""

    def __init__(self, out_dim: int, channels: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        self.cnn = conv_stack(1, channels)
        self.head = TemporalHead(channels[-1], out_dim)

    def forward(self, audio: Tensor) -> Encoded:
        features = self.cnn((audio + DB_OFFSET) / DB_SCALE)
        return self.head(features.mean(dim=2))


class VideoEncoder(nn.Module):
    """Face crops (B, T, C, H, W) uint8 -> Encoded with one token per video frame.

    The 2D CNN sees every frame independently (time folded into the batch); time is modelled only
    by the light temporal conv of the head, which keeps the encoder cheap on CPU.
    """

    def __init__(self, in_channels: int, out_dim: int, channels: Sequence[int] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cnn = nn.Sequential(conv_stack(in_channels, channels), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = TemporalHead(channels[-1], out_dim)

    def forward(self, video: Tensor) -> Encoded:
        per_frame = self.cnn(frames_as_images(video, self.in_channels, type(self).__name__))
        return self.head(per_frame.reshape(video.shape[0], video.shape[1], -1).transpose(1, 2))


def frames_as_images(video: Tensor, in_channels: int, encoder: str) -> Tensor:
    """Face crops (B, T, C, H, W) uint8 -> (B * T, C, H, W) in [0, 1]: time folded into the batch."""
    batch, frames, channels, height, width = video.shape
    if channels != in_channels:
        raise ValueError(f"{encoder} expects {in_channels} channels, got video of shape {tuple(video.shape)}")
    return video.reshape(batch * frames, channels, height, width).float() / 255.0

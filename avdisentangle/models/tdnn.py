"""A time-delay network over the log-mel, the audio encoder for real speech.

The default audio encoder treats the log-mel as an image: 2-D convolutions that pool the frequency axis
away early. Speech models of the x-vector family (Snyder et al. 2018, for speaker and paralinguistic
tasks) read each frame's whole spectrum instead: the mel bins are the input channels of 1-D convolutions
over time, dilated to widen the context, and the frames are pooled by their mean and standard deviation,
so the encoding says how the voice varies as well as how it sounds on average. On the real RAVDESS
speech wavs, with speaker-normalised features (`data.speaker_norm`), it read emotion on unseen speakers
better than the 2-D CNN at the same cost (benchmarks/RESULTS.md, "Real speech").

It needs the number of mel bins when it is built: configs give it as `${data.features.n_mels}`
(`experiments/configs/model/tdnn_audio.yaml`), so it follows the features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avdisentangle.models.encoders import DB_OFFSET, DB_SCALE, Encoded

# (kernel, dilation) per layer: context of 5, then 5 + 4 + 6 = 15 frames (0.3 s at 20 ms hops), then a
# frame-wise layer, as in the x-vector's frame-level part.
LAYERS = ((5, 1), (3, 2), (3, 3), (1, 1))


class TDNNAudioEncoder(nn.Module):
    """Log-mel (B, 1, n_mels, frames) in dB -> Encoded: pooled mean and std of the frame features, and one
    token per frame.

    Args:
        out_dim: the pooled vector's size (the model passes its `hidden_dim`).
        n_mels: mel bins of the features (`${data.features.n_mels}` in a config).
        width: channels of every layer but the last, which has `out_dim` (the tokens attention fusion reads).
        layers: (kernel, dilation) of each 1-D convolution over time.
    """

    def __init__(
        self, out_dim: int, n_mels: int, width: int = 128, layers: Sequence[tuple[int, int]] = LAYERS
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        blocks: list[nn.Module] = []
        widths = [n_mels] + [width] * (len(layers) - 1) + [out_dim]
        for (kernel, dilation), channels, next_channels in zip(layers, widths[:-1], widths[1:]):
            blocks += [
                nn.Conv1d(channels, next_channels, kernel, dilation=dilation, padding=dilation * (kernel // 2)),
                nn.BatchNorm1d(next_channels),
                nn.ReLU(inplace=True),
            ]
        self.frames = nn.Sequential(*blocks)
        self.pool = nn.Linear(2 * out_dim, out_dim)

    def forward(self, audio: Tensor) -> Encoded:
        if audio.shape[2] != self.n_mels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.n_mels} mel bins, got audio of shape {tuple(audio.shape)}"
            )
        frames = self.frames(((audio + DB_OFFSET) / DB_SCALE).squeeze(1))  # (B, out_dim, frames)
        pooled = self.pool(torch.cat([frames.mean(dim=2), frames.std(dim=2)], dim=1))
        return Encoded(pooled=pooled, tokens=frames.transpose(1, 2))

"""Audio encoders over features that an upstream extractor computed once: eGeMAPS functionals, and the
hidden states of a frozen self-supervised speech model (SSL: wav2vec 2.0, HuBERT, WavLM).

Each is built for the per-clip shape of the cached features (`input_shape`, which the model passes from
`audio_shape`, linked from the data), so a cache of another feature kind is refused in one line instead of
failing deep inside a matrix product. Configs: `experiments/configs/model/egemaps.yaml` and `ssl.yaml`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avdisentangle.errors import UserError
from avdisentangle.models.encoders import Encoded


def checked_shape(encoder: str, input_shape: Sequence[int] | None, dims: int, reads: str) -> tuple[int, ...]:
    """`input_shape` as a tuple of `dims` sizes, or one line that says which features the encoder reads."""
    if input_shape is None or len(input_shape) != dims:
        got = "no audio shape" if input_shape is None else f"audio of per-clip shape {tuple(input_shape)}"
        raise UserError(f"{encoder} reads {reads} (set data.features.audio to match); got {got}")
    return tuple(int(size) for size in input_shape)


def clip_features(audio: Tensor, input_shape: tuple[int, ...], encoder: str) -> Tensor:
    """The batch (B, *input_shape) as float32; a channel axis of one after the batch axis (as the log-mel path
    adds) is dropped."""
    if audio.shape[1:] == (1, *input_shape):
        audio = audio.squeeze(1)
    if audio.shape[1:] != input_shape:
        raise ValueError(f"{encoder} was built for clips of {input_shape}, got audio of shape {tuple(audio.shape)}")
    return audio.float()


class EgemapsEncoder(nn.Module):
    """eGeMAPS functionals (B, 88) -> standardised -> MLP -> Encoded with a single token.

    The functionals mix units (Hz, dB, ratios, counts) over several orders of magnitude, so they are
    standardised first, with the training set's statistics: a batch norm without affine parameters whose
    cumulative running mean and variance (`momentum=None`) are the mean and variance of every training batch
    seen, and which evaluation uses as they are. Its epsilon is far below batch norm's default (1e-5), which
    would shrink a feature whose variance is near it (one in units of 1e-3 came out at a third of unit scale).

    Args:
        out_dim: the pooled vector's size (the model passes its `hidden_dim`).
        input_shape: the per-clip feature shape, `(88,)` for eGeMAPSv02 (the model passes `audio_shape`).
        width: the hidden layer's size.
        dropout: dropout after the hidden layer.
    """

    def __init__(
        self, out_dim: int, input_shape: Sequence[int] | None = None, width: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.input_shape = checked_shape(type(self).__name__, input_shape, 1, "a vector of eGeMAPS functionals")
        self.standardise = nn.BatchNorm1d(self.input_shape[0], eps=1e-10, affine=False, momentum=None)
        self.mlp = nn.Sequential(
            nn.Linear(self.input_shape[0], width), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(width, out_dim)
        )

    def forward(self, audio: Tensor) -> Encoded:
        pooled = self.mlp(self.standardise(clip_features(audio, self.input_shape, type(self).__name__)))
        return Encoded(pooled=pooled, tokens=pooled.unsqueeze(1))


class SSLEncoder(nn.Module):
    """Hidden states of a frozen speech model (B, L layers, K positions, D) -> Encoded with one token per position.

    As in SUPERB (Yang et al. 2021), the layers are mixed by learnt softmax weights, uniform at the start; each
    layer is first layer-normalised over D (s3prl's `normalize`), so that a weight says how much a layer is used,
    not how large its activations are. The mix is then layer-normalised and projected per position (K: the pooled
    statistics mean and std, or the clip's segments), and the positions are flattened into the pooled vector,
    so the pooled vector knows which position each feature came from.

    This one encoder feeds the shared trunk, so both task branches (emotion and speaker) read the same layer
    mix: the weights (`layer_weights`) say which layers the tasks used together, not emotion alone.

    Args:
        out_dim: the pooled vector's and each token's size (the model passes its `hidden_dim`).
        input_shape: the per-clip feature shape `(L, K, D)` (the model passes `audio_shape`).
    """

    def __init__(self, out_dim: int, input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.input_shape = checked_shape(type(self).__name__, input_shape, 3, "(layers, positions, hidden) SSL states")
        layers, positions, hidden = self.input_shape
        self.layer_logits = nn.Parameter(torch.zeros(layers))
        self.project = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out_dim), nn.ReLU(inplace=True))
        self.pool = nn.Linear(positions * out_dim, out_dim)

    def layer_weights(self) -> Tensor:
        """The softmax weights over the layers (L,), detached, summing to 1."""
        return self.layer_logits.detach().softmax(dim=0)

    def forward(self, audio: Tensor) -> Encoded:
        states = clip_features(audio, self.input_shape, type(self).__name__)  # (B, L, K, D)
        states = F.layer_norm(states, states.shape[-1:])
        mixed = torch.einsum("l,blkd->bkd", self.layer_logits.softmax(dim=0), states)
        tokens = self.project(mixed)  # (B, K, out_dim)
        return Encoded(pooled=self.pool(tokens.flatten(1)), tokens=tokens)

"""ResNet-18 encoders, the wider standard choice for each modality: a 2-D CNN over the log-mel, and a
per-frame face CNN whose frame vectors a temporal head pools (mean + max, as the small encoders do).

The trunk is torchvision's ResNet-18 (BasicBlock, layers [2, 2, 2, 2], widths 64-512 at the default
`base_width`) written out here, with torchvision's state_dict names and no `fc`, so its ImageNet
weights load from a local file (`weights`) without torchvision installed. `train_mode: freeze` keeps
the trunk as loaded: no gradients, and its batch norms in eval mode so their running statistics stay.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from avdisentangle.errors import UserError
from avdisentangle.models.encoders import DB_OFFSET, DB_SCALE, Encoded, TemporalHead, frames_as_images
from avdisentangle.models.weights import load_weights

TrainMode = Literal["finetune", "freeze"]
TRAIN_MODES = ("finetune", "freeze")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (a strided 1x1 conv when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """Images (N, C, H, W) -> feature maps (N, 8 * base_width, H / 32, W / 32), never below 1 x 1."""

    def __init__(self, in_channels: int = 3, base_width: int = 64) -> None:
        super().__init__()
        widths = [base_width * 2**i for i in range(4)]
        self.conv1 = nn.Conv2d(in_channels, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(base_width, widths[0]), BasicBlock(widths[0], widths[0]))
        self.layer2 = nn.Sequential(BasicBlock(widths[0], widths[1], 2), BasicBlock(widths[1], widths[1]))
        self.layer3 = nn.Sequential(BasicBlock(widths[1], widths[2], 2), BasicBlock(widths[2], widths[2]))
        self.layer4 = nn.Sequential(BasicBlock(widths[2], widths[3], 2), BasicBlock(widths[3], widths[3]))
        self.out_channels = widths[3]
        for module in self.modules():  # torchvision's initialisation, for training from scratch
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNetEncoder(nn.Module):
    """A ResNet-18 trunk, optionally from a local weights file and frozen, and a temporal head (always trained)."""

    def __init__(
        self, in_channels: int, out_dim: int, base_width: int, weights: str | None, train_mode: TrainMode
    ) -> None:
        super().__init__()
        if train_mode not in TRAIN_MODES:
            raise UserError(f"train_mode must be one of {', '.join(TRAIN_MODES)}; got {train_mode!r}")
        self.backbone = ResNet18(in_channels, base_width)
        if weights is not None:
            load_weights(self.backbone, weights)
        self.frozen = train_mode == "freeze"
        self.backbone.requires_grad_(not self.frozen)
        self.backbone.train(not self.frozen)  # Lightning restores each module's own mode after validating
        self.head = TemporalHead(self.backbone.out_channels, out_dim)

    def train(self, mode: bool = True) -> ResNetEncoder:
        """A frozen trunk stays in eval mode, so training does not move its batch-norm statistics either."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self


class ResNetAudioEncoder(ResNetEncoder):
    """Log-mel (B, 1, n_mels, n_frames) in dB -> Encoded with one token per 32 audio frames.

    The input gets the small encoder's fixed dB map; an RGB `weights` file's first conv is summed
    over its input channels to fit the single log-mel channel.
    """

    def __init__(
        self, out_dim: int, base_width: int = 64, weights: str | None = None, train_mode: TrainMode = "finetune"
    ) -> None:
        super().__init__(1, out_dim, base_width, weights, train_mode)

    def forward(self, audio: Tensor) -> Encoded:
        features = self.backbone((audio + DB_OFFSET) / DB_SCALE)
        return self.head(features.mean(dim=2))


class ResNetVideoEncoder(ResNetEncoder):
    """Face crops (B, T, C, H, W) uint8 -> Encoded with one token per video frame.

    Pixels are scaled to [0, 1]; with `imagenet_stats` (by default: when `weights` are given) they
    are then standardised with ImageNet's mean and std, averaged over RGB for grey faces (whose first
    conv is then the RGB one summed over channels), as the pretrained trunk saw its images.
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        base_width: int = 64,
        weights: str | None = None,
        train_mode: TrainMode = "finetune",
        imagenet_stats: bool | None = None,
    ) -> None:
        super().__init__(in_channels, out_dim, base_width, weights, train_mode)
        self.in_channels = in_channels
        mean, std = torch.zeros(in_channels), torch.ones(in_channels)
        standardise = weights is not None if imagenet_stats is None else imagenet_stats
        if standardise:
            if in_channels not in (1, 3):
                raise UserError(f"imagenet_stats needs grey or RGB faces; got {in_channels} channels")
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            if in_channels == 1:
                mean, std = mean.mean(dim=0, keepdim=True), std.mean(dim=0, keepdim=True)
        # Not persistent: derived from the hyperparameters, so checkpoints keep the trunk's keys only.
        self.register_buffer("pixel_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, video: Tensor) -> Encoded:
        pixels = frames_as_images(video, self.in_channels, type(self).__name__)
        per_frame = self.backbone((pixels - self.pixel_mean) / self.pixel_std).mean(dim=(2, 3))
        return self.head(per_frame.reshape(video.shape[0], video.shape[1], -1).transpose(1, 2))

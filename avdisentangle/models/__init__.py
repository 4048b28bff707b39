"""Model components (encoders, fusion) and the multitask LightningModule that trains them."""

from avdisentangle.models.encoders import AudioEncoder, Encoded, VideoEncoder
from avdisentangle.models.fusion import AttentionFusion, ConcatFusion
from avdisentangle.models.multitask import MultitaskAVModule
from avdisentangle.models.resnet import ResNetAudioEncoder, ResNetVideoEncoder
from avdisentangle.models.upstream import EgemapsEncoder, SSLEncoder

__all__ = [
    "AttentionFusion",
    "AudioEncoder",
    "ConcatFusion",
    "EgemapsEncoder",
    "Encoded",
    "MultitaskAVModule",
    "ResNetAudioEncoder",
    "ResNetVideoEncoder",
    "SSLEncoder",
    "VideoEncoder",
]

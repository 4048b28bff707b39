"""The multitask LightningModule: emotion and speaker heads on two embeddings of one shared trunk.

It owns the task losses, metrics and optimiser, and knows no particular disentanglement strategy:
strategies (Lightning callbacks) put their own modules into `strategy_modules` and attach
themselves; every step the module adds the named loss terms each attached strategy returns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning.pytorch as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassRecall
from torchmetrics.wrappers import ClasswiseWrapper

from avdisentangle.data.modalities import parse_modalities
from avdisentangle.data.splits import SPLIT_NAMES
from avdisentangle.errors import UserError
from avdisentangle.models.encoders import AudioEncoder, VideoEncoder
from avdisentangle.models.factories import (
    AudioEncoderFactory,
    VideoEncoderFactory,
    build_encoders,
    encoder_spec,
    forget_weights_files,
)
from avdisentangle.models.fusion import AttentionFusion, ConcatFusion
from avdisentangle.models.heads import EmotionHead, branch
from avdisentangle.models.metrics import task_metrics
from avdisentangle.models.optimisation import CosineAdamW

if TYPE_CHECKING:
    from avdisentangle.data.datamodule import AVDataModule
    from avdisentangle.strategies.base import DisentanglementStrategy

FUSIONS = {"concat": ConcatFusion, "attention": AttentionFusion}
TASKS = ("emotion", "speaker")
LAYER_WEIGHT_PREFIX = "train/ssl_layer_weight/"
STRATEGY_PREFIX = "strategy_modules."


def check_settings(
    fusion: str, num_emotions: int, class_weights: list[float] | None, label_names: list[str] | None
) -> None:
    """One line for a fusion that does not exist or per-emotion lists of the wrong length."""
    if fusion not in FUSIONS:
        raise UserError(f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
    for name, values in (("emotion_class_weights", class_weights), ("emotion_label_names", label_names)):
        if values is not None and len(values) != num_emotions:
            raise UserError(f"{name} has {len(values)} entries for {num_emotions} emotions")


class MultitaskAVModule(CosineAdamW, L.LightningModule):
    """Audio/video encoders -> fusion -> h -> (z_emotion -> emotion head, z_identity -> speaker head).

    Loss = CE(emotion, optional class weights) + identity_weight * CE(speaker) + strategy terms.
    With `emotion_reads_identity` the emotion head also reads z_identity, gradient-stopped (`models/heads.py`).
    The encoders are injected factories (`models/factories.py`): `audio_encoder(hidden_dim)` and
    `video_encoder(video_channels, hidden_dim)`, or their plain form (an import path or class_path + init_args).
    `audio_shape` is the per-clip shape of the cached audio features (linked from the data): audio encoders that
    take `input_shape` are built for it (`models/upstream.py`).
    """

    def __init__(
        self,
        num_emotions: int,
        num_speakers: int,
        emotion_class_weights: list[float] | None = None,
        video_channels: int = 1,
        modalities: str = "audio,video",
        hidden_dim: int = 128,
        emotion_dim: int = 64,
        identity_dim: int = 64,
        fusion: str = "concat",
        audio_encoder: AudioEncoderFactory = AudioEncoder,
        video_encoder: VideoEncoderFactory = VideoEncoder,
        dropout: float = 0.2,
        identity_weight: float = 0.5,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        emotion_label_names: list[str] | None = None,
        emotion_reads_identity: bool = False,
        audio_shape: list[int] | None = None,
    ) -> None:
        super().__init__()
        factories = (audio_encoder, video_encoder)
        # save_hyperparameters reads the arguments as they are now: their plain form, which checkpoints can hold.
        audio_encoder, video_encoder = encoder_spec(audio_encoder), encoder_spec(video_encoder)
        audio_shape = None if audio_shape is None else [int(size) for size in audio_shape]
        self.save_hyperparameters()
        self.modalities = parse_modalities(modalities)
        check_settings(fusion, num_emotions, emotion_class_weights, emotion_label_names)
        self.emotion_label_names = emotion_label_names or [str(i) for i in range(num_emotions)]

        self.encoders = build_encoders(self.modalities, *factories, video_channels, hidden_dim, audio_shape)
        self.fusion = FUSIONS[fusion](self.modalities, hidden_dim, hidden_dim, dropout=dropout)
        self.emotion_branch = branch(hidden_dim, emotion_dim, dropout)
        self.identity_branch = branch(hidden_dim, identity_dim, dropout)
        self.emotion_head = EmotionHead(emotion_dim, identity_dim, num_emotions, emotion_reads_identity)
        self.speaker_head = nn.Linear(identity_dim, num_speakers)
        # Not persistent: the weights come from the hyperparameters, so checkpoints never disagree with them.
        weights = None if emotion_class_weights is None else torch.tensor(emotion_class_weights, dtype=torch.float32)
        self.register_buffer("emotion_class_weights", weights, persistent=False)

        counts = {"emotion": num_emotions, "speaker": num_speakers}
        self.metrics = nn.ModuleDict(
            {f"{s}_{t}": task_metrics(counts[t], f"{s}/{t}/") for s in SPLIT_NAMES for t in TASKS}
        )
        self.test_confusion = MulticlassConfusionMatrix(num_emotions)
        self.test_recall = ClasswiseWrapper(
            MulticlassRecall(num_emotions, average=None), self.emotion_label_names, prefix="test/emotion/recall/"
        )
        self.test_confusion_matrix: np.ndarray | None = None

        self.strategy_modules = nn.ModuleDict()
        self.attached_strategies: dict[str, DisentanglementStrategy] = {}
        # The last training step's named loss terms, detached: DivergenceGuard names the non-finite ones.
        self.last_loss_terms: dict[str, Tensor] = {}

    @classmethod
    def for_data(cls, datamodule: AVDataModule, **hparams: Any) -> MultitaskAVModule:
        """A model sized from the data, as the CLI links it (label counts, class weights, video channels,
        audio shape)."""
        datamodule.ready()
        return cls(
            datamodule.num_emotions,
            datamodule.num_speakers,
            datamodule.emotion_class_weights,
            datamodule.video_channels,
            audio_shape=datamodule.audio_shape,
            **hparams,
        )

    # ----------------------------------------------------------------------------- strategies
    def attach_strategy(self, strategy: DisentanglementStrategy) -> None:
        """Register a strategy whose loss terms join the loss; re-attaching the same object is a no-op."""
        attached = self.attached_strategies.get(strategy.name)
        if attached is not None and attached is not strategy:
            raise UserError(f"a strategy named '{strategy.name}' is already attached; each strategy may be used once")
        self.attached_strategies[strategy.name] = strategy

    def detach_strategy(self, strategy: DisentanglementStrategy) -> None:
        """Stop adding a strategy's terms (its modules stay, so checkpoints keep them)."""
        if self.attached_strategies.get(strategy.name) is strategy:
            del self.attached_strategies[strategy.name]

    # ------------------------------------------------------------------------------- forward
    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        encoded = {m: self.encoders[m](batch[m]) for m in self.modalities}
        hidden = self.fusion(encoded)
        z_emotion = self.emotion_branch(hidden)
        z_identity = self.identity_branch(hidden)
        return {
            "z_emotion": z_emotion,
            "z_identity": z_identity,
            "emotion_logits": self.emotion_head(z_emotion, z_identity),
            "speaker_logits": self.speaker_head(z_identity),
        }

    def task_losses(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The weighted multitask terms, named as they are logged ('emotion/ce', 'speaker/ce')."""
        emotion = F.cross_entropy(
            outputs["emotion_logits"].float(), batch["emotion"], weight=self.emotion_class_weights
        )
        speaker = F.cross_entropy(outputs["speaker_logits"].float(), batch["speaker"])
        return {"emotion/ce": emotion, "speaker/ce": self.hparams.identity_weight * speaker}

    def strategy_losses(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every attached strategy's weighted terms, named '<strategy>/<term>'."""
        return {
            f"{name}/{term}": value.float()
            for name, strategy in self.attached_strategies.items()
            for term, value in strategy.loss_terms(outputs, batch).items()
        }

    def _shared_step(self, batch: dict[str, Tensor], split: str) -> tuple[Tensor, dict[str, Tensor]]:
        outputs = self(batch)
        speakers = self.scores_speakers()
        terms = self.task_losses(outputs, batch)
        terms = {**terms, **self.strategy_losses(outputs, batch)} if speakers else {"emotion/ce": terms["emotion/ce"]}
        loss = sum(terms.values())
        if split == "train":
            self.last_loss_terms = {name: value.detach() for name, value in terms.items()}
        log = {"on_step": False, "on_epoch": True, "sync_dist": True, "batch_size": batch["emotion"].shape[0]}
        self.log(f"{split}/loss", loss, prog_bar=split != "test", **log)
        self.log_dict({f"{split}/{key}": value for key, value in terms.items()}, **log)
        for task in TASKS if speakers else ("emotion",):
            metrics = self.metrics[f"{split}_{task}"]
            metrics.update(outputs[f"{task}_logits"].detach().float(), batch[task])
            self.log_dict(metrics, **log)
        return loss, outputs

    def scores_speakers(self) -> bool:
        """False when the clips' speakers are not this model's: a cross-corpus test (`data.label_space_from`)
        labels them -100, and only emotion is scored. The data says so once; no batch's labels are read back."""
        return getattr(self.trainer.datamodule, "speakers_known", True)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")[0]

    def on_train_epoch_end(self) -> None:
        """Log the audio encoder's layer weights when it has them (`SSLEncoder`): which layers the tasks read."""
        encoder = self.encoders["audio"] if "audio" in self.encoders else None
        if hasattr(encoder, "layer_weights"):
            for layer, weight in enumerate(encoder.layer_weights().tolist()):
                self.log(f"{LAYER_WEIGHT_PREFIX}{layer}", weight, sync_dist=True)  # the same on every process

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        _, outputs = self._shared_step(batch, "test")
        self.test_confusion.update(outputs["emotion_logits"].float(), batch["emotion"])
        self.test_recall.update(outputs["emotion_logits"].float(), batch["emotion"])

    def on_test_epoch_end(self) -> None:
        """Keep the emotion confusion matrix (rows = true class) and log each class's recall.

        A class with no test clip has no recall: torchmetrics gives it 0 (`zero_division` is 0 or 1),
        so it is logged as NaN, as UAR leaves it out, not as a class never recognised.
        """
        matrix = self.test_confusion.compute()
        self.test_confusion.reset()
        self.test_confusion_matrix = matrix.cpu().numpy()
        recalls = self.test_recall.compute()
        self.test_recall.reset()
        for (name, value), support in zip(recalls.items(), matrix.sum(dim=1)):
            # Already reduced over processes by the metrics, so no sync_dist.
            self.log(name, value if support > 0 else torch.full_like(value, math.nan))
        for emotion, count in getattr(self.trainer.datamodule, "excluded_emotions", {}).items():
            self.log(f"test/excluded/{emotion}", float(count))  # cross-corpus clips outside this label space

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        outputs = self(batch)
        return {
            "index": batch["index"].cpu(),
            "emotion_probs": outputs["emotion_logits"].float().softmax(dim=1).cpu(),
            "z_emotion": outputs["z_emotion"].float().cpu(),
            "z_identity": outputs["z_identity"].float().cpu(),
        }

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the encoders without their pretrained weights files, so the checkpoint loads without them."""
        forget_weights_files(checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY, {}))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the modules of strategies not configured now, saying so in one line: a model loads for
        inference with `load_from_checkpoint(path)` alone; configured strategies (resume, validate) keep theirs."""
        state = checkpoint["state_dict"]
        owners = {key: key[len(STRATEGY_PREFIX) :].split(".")[0] for key in state if key.startswith(STRATEGY_PREFIX)}
        dropped = sorted(set(owners.values()) - set(self.strategy_modules.keys()))
        if not dropped:
            return
        for key, owner in owners.items():
            if owner in dropped:
                del state[key]
        rank_zero_warn(
            f"checkpoint holds modules of strategies {dropped} that are not configured: loading the model without "
            "them (add those strategy callbacks to train or evaluate with them)"
        )

"""Encoders, fusion and the multitask LightningModule on random batches of the DataModule's contract."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
from torch.utils.data import DataLoader

from avdisentangle.models import AttentionFusion, AudioEncoder, ConcatFusion, MultitaskAVModule, VideoEncoder
from tests import helpers

NUM_EMOTIONS, NUM_SPEAKERS = 4, 5


pytestmark = pytest.mark.usefixtures("single_thread")


def make_batch(
    batch_size: int = 12,
    channels: int = 1,
    n_mels: int = 16,
    n_frames: int = 40,
    frames: int = 4,
    size: int = 32,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A batch of the contract whose labels are learnable: emotion lifts mel bands, speaker lights rows."""
    g = torch.Generator().manual_seed(seed)
    emotion = torch.arange(batch_size) % NUM_EMOTIONS
    speaker = torch.randint(0, NUM_SPEAKERS, (batch_size,), generator=g)
    audio = torch.randn(batch_size, 1, n_mels, n_frames, generator=g) * 10 - 40
    band = n_mels // NUM_EMOTIONS
    for i, e in enumerate(emotion.tolist()):
        audio[i, 0, e * band : (e + 1) * band] += 30
    video = torch.randint(0, 128, (batch_size, frames, channels, size, size), generator=g, dtype=torch.uint8)
    rows = size // NUM_SPEAKERS
    for i, s in enumerate(speaker.tolist()):
        video[i, :, :, s * rows : (s + 1) * rows] = 255
    return {"audio": audio, "video": video, "emotion": emotion, "speaker": speaker, "index": torch.arange(batch_size)}


def as_samples(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Split a batch into per-clip dicts, which the default collate stacks back."""
    return [{k: v[i] for k, v in batch.items()} for i in range(len(batch["index"]))]


def model(**kwargs) -> MultitaskAVModule:
    return helpers.model(NUM_EMOTIONS, NUM_SPEAKERS, emotion_dim=16, identity_dim=16, **kwargs)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
@pytest.mark.parametrize("modalities", ["audio", "video", "audio,video", "video, audio"])
def test_forward_shapes(modalities: str, fusion: str) -> None:
    net = model(modalities=modalities, fusion=fusion)
    outputs = net(make_batch(batch_size=6))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "z_emotion": (6, 16),
        "z_identity": (6, 16),
        "emotion_logits": (6, NUM_EMOTIONS),
        "speaker_logits": (6, NUM_SPEAKERS),
    }
    assert net.modalities == tuple(m for m in ("audio", "video") if m in modalities)


@pytest.mark.parametrize(
    ("n_mels", "n_frames", "frames", "size", "channels"), [(16, 40, 4, 32, 1), (40, 9, 11, 48, 3), (64, 200, 8, 64, 1)]
)
def test_encoders_take_any_size(n_mels: int, n_frames: int, frames: int, size: int, channels: int) -> None:
    batch = make_batch(batch_size=3, channels=channels, n_mels=n_mels, n_frames=n_frames, frames=frames, size=size)
    audio = AudioEncoder(24)(batch["audio"])
    video = VideoEncoder(channels, 24)(batch["video"])
    assert audio.pooled.shape == (3, 24) and audio.tokens.shape[::2] == (3, 24)
    assert video.pooled.shape == (3, 24) and video.tokens.shape == (3, frames, 24)


def test_video_encoder_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match="3 channels"):
        VideoEncoder(3, 8)(make_batch(batch_size=2, channels=1)["video"])


@pytest.mark.parametrize("fusion_cls", [ConcatFusion, AttentionFusion])
def test_fusion_handles_one_or_two_modalities(fusion_cls: type) -> None:
    batch = make_batch(batch_size=2)
    encoded = {"audio": AudioEncoder(16)(batch["audio"]), "video": VideoEncoder(1, 16)(batch["video"])}
    for modalities in (("audio",), ("video",), ("audio", "video")):
        assert fusion_cls(modalities, 16, 8)(encoded).shape == (2, 8)


@pytest.mark.parametrize("modalities", ["", " , ", "text", "audio,text"])
def test_invalid_modalities_raise(modalities: str) -> None:
    with pytest.raises(ValueError, match="audio, video"):
        model(modalities=modalities)


def test_invalid_fusion_raises() -> None:
    with pytest.raises(ValueError, match="concat, attention"):
        model(fusion="gated")


def test_class_weights_must_match_emotions() -> None:
    with pytest.raises(ValueError, match="4 emotions"):
        model(emotion_class_weights=[1.0, 2.0])


def test_class_weights_change_the_emotion_loss() -> None:
    batch = make_batch()
    torch.manual_seed(0)
    plain = model().eval()
    torch.manual_seed(0)
    weighted = model(emotion_class_weights=[1.0, 5.0, 1.0, 1.0]).eval()
    plain_ce = plain.task_losses(plain(batch), batch)["emotion/ce"]
    weighted_ce = weighted.task_losses(weighted(batch), batch)["emotion/ce"]
    assert not torch.isclose(plain_ce, weighted_ce)


@pytest.mark.parametrize("reads_identity", [False, True])
def test_the_emotion_loss_never_reaches_the_identity_branch(reads_identity: bool) -> None:
    """The emotion head may read z_identity (`emotion_reads_identity`), but through a stop-gradient only: the
    emotion CE alone leaves the identity branch without gradient and still moves the emotion branch."""
    torch.manual_seed(0)
    net = model(dropout=0.0, emotion_reads_identity=reads_identity)
    batch = make_batch()
    net.task_losses(net(batch), batch)["emotion/ce"].backward()
    assert all(p.grad is None or not p.grad.any() for p in net.identity_branch.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.emotion_branch.parameters())
    head = net.emotion_head.weight
    assert tuple(head.shape) == (NUM_EMOTIONS, 32 if reads_identity else 16)
    if reads_identity:  # the head does read z_identity: the weights on it learn from the emotion loss
        assert head.grad[:, 16:].abs().sum() > 0
    # the option off keeps the head's parameter names, so checkpoints written before it still load
    assert {"emotion_head.weight", "emotion_head.bias"} <= set(net.state_dict())


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_optimisation_reduces_loss(fusion: str) -> None:
    torch.manual_seed(0)
    net = model(fusion=fusion, dropout=0.0)
    batch = make_batch(batch_size=16)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = sum(net.task_losses(net(batch), batch).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_bf16_autocast_forward_on_cpu(fusion: str) -> None:
    net = model(fusion=fusion)
    batch = make_batch(batch_size=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = net(batch)
        loss = sum(net.task_losses(outputs, batch).values())
    assert outputs["z_emotion"].dtype == torch.bfloat16
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()


def test_lightning_fit_test_predict_in_bf16_mixed() -> None:
    L.seed_everything(0)
    loader = DataLoader(as_samples(make_batch(batch_size=16)), batch_size=8)
    net = model(emotion_label_names=["ang", "hap", "neu", "sad"])
    trainer = helpers.trainer(max_epochs=2, precision="bf16-mixed")
    trainer.fit(net, train_dataloaders=loader, val_dataloaders=loader)
    assert {
        "train/loss",
        "train/emotion/uar",
        "train/speaker/f1",
        "val/emotion/uar",
        "val/emotion/wa",
        "val/emotion/f1",
        "val/speaker/uar",
        "val/emotion/ce",
        "val/speaker/ce",
    } <= set(trainer.callback_metrics)

    (results,) = trainer.test(net, dataloaders=loader, verbose=False)
    assert {"test/emotion/uar", "test/speaker/wa", "test/emotion/recall/ang", "test/emotion/recall/sad"} <= set(results)
    matrix = net.test_confusion_matrix
    assert matrix.shape == (NUM_EMOTIONS, NUM_EMOTIONS) and matrix.sum() == 16
    # UAR is the mean of the per-class recalls the confusion matrix gives.
    recalls = [results[f"test/emotion/recall/{name}"] for name in ("ang", "hap", "neu", "sad")]
    assert results["test/emotion/uar"] == pytest.approx(sum(recalls) / 4, abs=1e-6)

    predictions = trainer.predict(net, dataloaders=loader)
    first = predictions[0]
    assert set(first) == {"index", "emotion_probs", "z_emotion", "z_identity"}
    assert all(v.device.type == "cpu" for v in first.values())
    assert torch.allclose(first["emotion_probs"].sum(dim=1), torch.ones(8), atol=1e-5)
    assert torch.cat([p["index"] for p in predictions]).tolist() == list(range(16))


def test_cosine_schedule_spans_all_steps_and_unbounded_runs_keep_lr() -> None:
    loader = DataLoader(as_samples(make_batch(batch_size=8)), batch_size=4)
    net = model(lr=1e-2)
    trainer = helpers.trainer(max_epochs=3, limit_val_batches=0)
    trainer.fit(net, train_dataloaders=loader)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.T_max == 6 and scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)

    net.trainer = helpers.trainer(max_epochs=-1)
    assert isinstance(net.configure_optimizers(), torch.optim.AdamW)


def test_metric_updates_never_wait_for_the_device(monkeypatch) -> None:
    """torchmetrics' multiclass updates call `torch.unique` (argument validation) and `torch.bincount`, each a host
    sync on a GPU (the overhead that bound the small model's GPU steps); a training epoch must call neither."""
    calls = []
    for name in ("unique", "bincount"):
        real = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    helpers.trainer(max_epochs=1).fit(helpers.model(), datamodule=helpers.TinyAVData())
    assert calls == []

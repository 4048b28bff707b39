"""Encoders are injected: chosen by class_path in a config or on the command line, started from a local
weights file, frozen (parameters and batch-norm statistics), and rebuilt by `load_from_checkpoint`."""

from __future__ import annotations

import functools
import sys

import lightning.pytorch as L
import pytest
import torch

from avdisentangle.errors import UserError
from avdisentangle.lightning_cli import run_lightning
from avdisentangle.models import MultitaskAVModule
from avdisentangle.models.encoders import AudioEncoder, VideoEncoder
from avdisentangle.models.resnet import ResNet18, ResNetAudioEncoder, ResNetVideoEncoder
from avdisentangle.models.tdnn import TDNNAudioEncoder
from tests.helpers import REPO, SMALL, TinyAVData, batch_of, fit_args, model, trainer

WIDTH = 4  # a ResNet-18 of widths 4-32: the real layout at a test's cost


def save_trunk(path, in_channels: int = 3, base_width: int = WIDTH, wrap: str | None = None) -> dict:
    """Random ResNet-18 weights as torchvision writes them (with an ImageNet `fc`), optionally wrapped."""
    torch.manual_seed(1)
    state = ResNet18(in_channels, base_width).state_dict()
    for module in ("bn1", "layer1.0.bn1", "layer4.1.bn2"):  # batch-norm statistics that are not the defaults
        state[f"{module}.running_mean"].normal_()
        state[f"{module}.running_var"].uniform_(0.5, 2.0)
    written = {**state, "fc.weight": torch.randn(10, 8 * base_width), "fc.bias": torch.randn(10)}
    torch.save(written if wrap is None else {wrap: written, "epoch": 3}, path)
    return state


def assert_same_tensors(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(actual[key], tensor), key


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_a_weights_file_loads_tensor_by_tensor(tmp_path, wrap):
    state = save_trunk(tmp_path / "trunk.pth", wrap=wrap)
    encoder = ResNetVideoEncoder(3, 16, base_width=WIDTH, weights=str(tmp_path / "trunk.pth"))
    assert_same_tensors(encoder.backbone.state_dict(), state)


def test_rgb_weights_fit_a_grey_input_by_summing_the_first_conv(tmp_path):
    state = save_trunk(tmp_path / "rgb.pth")
    encoder = ResNetAudioEncoder(16, base_width=WIDTH, weights=str(tmp_path / "rgb.pth"))
    assert torch.equal(encoder.backbone.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    rgb = ResNet18(3, WIDTH)
    rgb.load_state_dict(state)
    grey = torch.randn(2, 1, 32, 32)
    assert torch.allclose(encoder.backbone.conv1(grey), rgb.conv1(grey.expand(-1, 3, -1, -1)), atol=1e-5)


def test_weights_that_do_not_fit_are_one_user_error(tmp_path):
    save_trunk(tmp_path / "narrow.pth", base_width=WIDTH)
    with pytest.raises(UserError, match=r"does not fit ResNet18: wrong shape: bn1\.bias \(4,\) for \(8,\), .* more"):
        ResNetAudioEncoder(16, base_width=2 * WIDTH, weights=str(tmp_path / "narrow.pth"))
    state = ResNet18(3, WIDTH).state_dict()
    without_layer4 = {key: value for key, value in state.items() if not key.startswith("layer4.")}
    torch.save({**without_layer4, "head.w": torch.ones(1)}, tmp_path / "x")
    with pytest.raises(UserError, match=r"missing layer4\.0\.bn1\.bias, .* more; unexpected head\.w$"):
        ResNetAudioEncoder(16, base_width=WIDTH, weights=str(tmp_path / "x"))


def test_a_bad_weights_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="weights file .*nowhere.pth not found"):
        ResNetVideoEncoder(1, 16, weights=str(tmp_path / "nowhere.pth"))
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot read weights file"):
        ResNetVideoEncoder(1, 16, weights=str(tmp_path / "notes.pth"))
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(UserError, match="holds no state_dict"):
        ResNetVideoEncoder(1, 16, weights=str(tmp_path / "list.pth"))


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory, single_thread):
    """A model whose ResNet encoders start frozen from a file, before and after one epoch, and its checkpoint."""
    folder = tmp_path_factory.mktemp("frozen")
    trunk = save_trunk(folder / "trunk.pth")
    weights = {"base_width": WIDTH, "weights": str(folder / "trunk.pth"), "train_mode": "freeze"}
    torch.manual_seed(0)
    net = model(
        audio_encoder=functools.partial(ResNetAudioEncoder, **weights),
        video_encoder=functools.partial(ResNetVideoEncoder, **weights),
    )
    before = {key: value.clone() for key, value in net.state_dict().items()}
    fit = trainer(max_epochs=1)
    fit.fit(net, datamodule=TinyAVData())
    fit.save_checkpoint(folder / "run.ckpt")
    (folder / "trunk.pth").unlink()  # a checkpoint must not need the file that initialised it
    return net, trunk, before, folder / "run.ckpt"


def test_a_frozen_trunk_keeps_its_weights_and_batch_norm_statistics_through_training(frozen_run):
    net, trunk, before, _ = frozen_run
    grey_conv1 = trunk["conv1.weight"].sum(dim=1, keepdim=True)
    after = net.state_dict()
    net.train()  # as a hand-written training loop would
    for modality in ("audio", "video"):
        backbone = net.encoders[modality].backbone
        assert not backbone.training and all(not p.requires_grad for p in backbone.parameters())
        assert torch.equal(backbone.conv1.weight, grey_conv1)
        assert torch.equal(backbone.layer1[0].bn1.running_mean, trunk["layer1.0.bn1.running_mean"])
        prefix = f"encoders.{modality}.backbone."
        assert_same_tensors({k: v for k, v in after.items() if k.startswith(prefix)},
                            {k: v for k, v in before.items() if k.startswith(prefix)})
        head = f"encoders.{modality}.head.pool.weight"
        assert not torch.equal(after[head], before[head])  # the rest of the model did train


def test_a_python_built_model_loads_from_its_checkpoint_without_the_weights_file(frozen_run):
    net, _, _, checkpoint = frozen_run
    loaded = MultitaskAVModule.load_from_checkpoint(checkpoint)
    assert isinstance(loaded.encoders["audio"], ResNetAudioEncoder) and loaded.encoders["audio"].frozen
    assert isinstance(loaded.encoders["video"], ResNetVideoEncoder)
    assert loaded.hparams.video_encoder["init_args"] == {"base_width": WIDTH, "weights": None, "train_mode": "freeze"}
    assert_same_tensors(loaded.state_dict(), net.state_dict())


def test_the_cli_injects_encoders_and_its_checkpoint_loads_without_the_weights_file(
    tiny_corpus, tmp_path, monkeypatch, single_thread
):
    trunk = save_trunk(tmp_path / "trunk.pth", in_channels=1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["avdisentangle"])
    quick = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    encoders = ["--config", str(REPO / "experiments/configs/model/resnet_audio.yaml")]
    encoders += [f"--model.audio_encoder.base_width={WIDTH}", f"--model.audio_encoder.weights={tmp_path}/trunk.pth"]
    encoders += ["--model.audio_encoder.train_mode=freeze", "--model.video_encoder=ResNetVideoEncoder"]
    encoders += [f"--model.video_encoder.base_width={WIDTH}", "--model.hidden_dim=16"]
    args = fit_args(tiny_corpus, tmp_path, *quick, *encoders, "--leakage_probe.enabled=false")
    cli = run_lightning(args[3:])
    audio, video = cli.model.encoders["audio"], cli.model.encoders["video"]
    assert isinstance(audio, ResNetAudioEncoder) and audio.frozen
    assert_same_tensors(audio.backbone.state_dict(), trunk)
    assert isinstance(video, ResNetVideoEncoder) and not video.frozen
    assert video.backbone.conv1.in_channels == cli.datamodule.video_channels  # linked from the data
    assert video.backbone.layer4[1].conv2.out_channels == 8 * WIDTH
    (tmp_path / "trunk.pth").unlink()
    loaded = MultitaskAVModule.load_from_checkpoint(tmp_path / "checkpoints/last.ckpt")
    assert isinstance(loaded.encoders["audio"], ResNetAudioEncoder) and loaded.encoders["audio"].frozen
    assert_same_tensors(loaded.state_dict(), cli.model.state_dict())


def test_the_default_encoders_and_older_checkpoints_are_unchanged(tmp_path):
    net = model()
    assert net.hparams.audio_encoder == "avdisentangle.models.encoders.AudioEncoder"
    assert {type(e) for e in net.encoders.values()} == {AudioEncoder, VideoEncoder}
    assert "encoders.audio.cnn.0.0.weight" in net.state_dict() and "encoders.video.head.pool.bias" in net.state_dict()
    older = {"num_emotions": 3, "num_speakers": 4, **SMALL}  # saved before encoders were injected
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": older, "pytorch-lightning_version": L.__version__},
               tmp_path / "older.ckpt")
    loaded = MultitaskAVModule.load_from_checkpoint(tmp_path / "older.ckpt").eval()
    batch = batch_of(4)
    assert torch.equal(loaded(batch)["emotion_logits"], net.eval()(batch)["emotion_logits"])


def test_an_encoder_that_cannot_be_recorded_or_built_is_a_user_error():
    with pytest.raises(UserError, match="so that checkpoints can rebuild it"):
        model(audio_encoder=lambda out_dim: AudioEncoder(out_dim))
    with pytest.raises(UserError, match="audio_encoder: cannot build"):
        model(audio_encoder={"class_path": "avdisentangle.models.nowhere.Encoder"})
    with pytest.raises(UserError, match="train_mode must be one of finetune, freeze; got 'frozen'"):
        model(video_encoder=functools.partial(ResNetVideoEncoder, base_width=WIDTH, train_mode="frozen"))


def test_the_time_delay_encoder_learns_emotion_from_the_spectrum_of_each_frame(single_thread):
    torch.manual_seed(0)
    net = model(modalities="audio", audio_encoder=functools.partial(TDNNAudioEncoder, n_mels=12, width=16))
    encoded = net.encoders["audio"](batch_of(4)["audio"])  # (4, 1, 12 mel bins, 24 frames)
    assert encoded.pooled.shape == (4, SMALL["hidden_dim"]) and encoded.tokens.shape == (4, 24, SMALL["hidden_dim"])
    with pytest.raises(ValueError, match="built for 12 mel bins, got audio of shape \\(4, 1, 16, 24\\)"):
        net.encoders["audio"](torch.zeros(4, 1, 16, 24))
    data = TinyAVData()
    trainer(max_epochs=20).fit(net, datamodule=data)
    batch = next(iter(data.val_dataloader()))
    accuracy = (net.eval()(batch)["emotion_logits"].argmax(1) == batch["emotion"]).float().mean()
    assert accuracy > 0.8  # chance is 1/3: the emotion lifts a band of mel bins


def test_the_time_delay_encoder_follows_the_features_mel_bins_in_a_config(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    tdnn = ["--config", str(REPO / "experiments/configs/model/tdnn_audio.yaml"), "--data.features.modalities=audio"]
    args = fit_args(tiny_corpus, tmp_path, *quick, *tdnn, "--data.features.n_mels=24", "--leakage_probe.enabled=false")
    cli = run_lightning(args[3:])
    encoder = cli.model.encoders["audio"]
    assert isinstance(encoder, TDNNAudioEncoder) and encoder.n_mels == 24 == cli.datamodule.cache.audio.shape[1]
    loaded = MultitaskAVModule.load_from_checkpoint(tmp_path / "checkpoints/last.ckpt")
    assert loaded.hparams.audio_encoder["init_args"]["n_mels"] == 24 and list(loaded.encoders) == ["audio"]

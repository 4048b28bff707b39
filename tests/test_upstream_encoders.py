"""Encoders over cached upstream features (eGeMAPS functionals, SSL hidden states): built for the features' shape,
standardised with training statistics, layer weights that find the informative layer, logged and plotted, under
every strategy, and rebuilt from a checkpoint with the shape in its hyperparameters."""

from __future__ import annotations

import csv
import functools

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader

from avdisentangle.errors import UserError
from avdisentangle.evaluation import plots
from avdisentangle.evaluation.report_outputs import layer_weights_by_strategy
from avdisentangle.evaluation.runs import RunOutcome, RunSpec
from avdisentangle.models import MultitaskAVModule
from avdisentangle.models.multitask import LAYER_WEIGHT_PREFIX
from avdisentangle.models.upstream import EgemapsEncoder, SSLEncoder
from avdisentangle.strategies import GradientReversalStrategy, HSICStrategy
from tests.helpers import NUM_EMOTIONS, NUM_SPEAKERS, model, trainer

pytestmark = pytest.mark.usefixtures("single_thread")

EGEMAPS_SHAPE = [88]
SSL_SHAPE = [5, 2, 16]  # layers, positions (mean and std rows), hidden size
ENCODERS = {"egemaps": (EgemapsEncoder, EGEMAPS_SHAPE), "ssl": (SSLEncoder, SSL_SHAPE)}


def upstream_samples(shape: list[int], n: int = 36, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Clips whose cached audio has `shape`; the emotion shifts the first few features of the last layer."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        emotion, speaker = i % NUM_EMOTIONS, int(torch.randint(0, NUM_SPEAKERS, (), generator=g))
        audio = torch.randn(*shape, generator=g)
        audio.view(-1, shape[-1])[-1, emotion * 4 : (emotion + 1) * 4] += 3.0
        labels = {"emotion": torch.tensor(emotion), "speaker": torch.tensor(speaker), "index": torch.tensor(i)}
        samples.append({"audio": audio, **labels})
    return samples


def loaders(shape: list[int]) -> dict[str, DataLoader]:
    samples = upstream_samples(shape)
    return {
        "train_dataloaders": DataLoader(samples, batch_size=12, shuffle=True),
        "val_dataloaders": DataLoader(samples, batch_size=12),
    }


def audio_model(kind: str, **hparams) -> MultitaskAVModule:
    cls, shape = ENCODERS[kind]
    return model(modalities="audio", audio_encoder=cls, audio_shape=shape, **hparams)


def test_each_encoder_is_built_for_its_features_shape():
    egemaps = EgemapsEncoder(32, input_shape=(88,))
    for batch in (torch.randn(4, 88), torch.randn(4, 1, 88)):  # with or without the log-mel path's channel axis
        encoded = egemaps(batch)
        assert encoded.pooled.shape == (4, 32) and encoded.tokens.shape == (4, 1, 32)
    encoded = SSLEncoder(32, input_shape=SSL_SHAPE)(torch.randn(4, *SSL_SHAPE).half())  # the cache is float16
    assert encoded.pooled.shape == (4, 32) and encoded.tokens.shape == (4, 2, 32)
    assert encoded.pooled.dtype == torch.float32
    with pytest.raises(ValueError, match=r"built for clips of \(5, 2, 16\), got audio of shape \(4, 5, 2, 8\)"):
        SSLEncoder(32, input_shape=SSL_SHAPE)(torch.randn(4, 5, 2, 8))
    with pytest.raises(UserError, match=r"EgemapsEncoder reads a vector of eGeMAPS .* per-clip shape \(32, 101\)"):
        model(audio_encoder=EgemapsEncoder, audio_shape=[32, 101])  # a log-mel cache
    with pytest.raises(UserError, match=r"SSLEncoder reads \(layers, positions, hidden\) .*; got no audio shape"):
        model(audio_encoder=SSLEncoder)


def test_egemaps_features_are_standardised_with_the_training_sets_statistics():
    torch.manual_seed(0)
    scales = 10.0 ** torch.linspace(-3, 4, 88)  # Hz, dB, ratios: seven orders of magnitude
    features = torch.randn(1024, 88) * scales + 5 * scales
    encoder = EgemapsEncoder(16, input_shape=(88,)).train()
    for batch in features.split(64):
        encoder(batch)
    norm = encoder.standardise
    assert torch.allclose(norm.running_mean, features.mean(0), rtol=0.02, atol=0)
    assert torch.allclose(norm.running_var, features.var(0), rtol=0.1, atol=0)
    standardised = norm.eval()(features)
    assert standardised.mean(0).abs().max() < 0.05 and (standardised.std(0) - 1).abs().max() < 0.05


def test_egemaps_encoder_learns_a_cue_hidden_among_features_of_much_larger_scale():
    torch.manual_seed(0)
    scales = 10.0 ** torch.linspace(4, -3, 88)  # the cue is the smallest-scale feature
    labels = torch.randint(0, 2, (512,))
    features = torch.randn(512, 88) * scales
    features[:, -1] += (2 * labels - 1) * 2 * scales[-1]
    net = nn.ModuleDict({"encoder": EgemapsEncoder(16, input_shape=(88,), dropout=0.0), "head": nn.Linear(16, 2)})
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(4):
        for batch, target in zip(features.split(64), labels.split(64)):
            loss = nn.functional.cross_entropy(net["head"](net["encoder"](batch).pooled), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()
    accuracy = (net["head"](net["encoder"](features).pooled).argmax(1) == labels).float().mean()
    assert accuracy > 0.9  # chance 0.5; unstandardised, the 1e4-scale features swamp the 1e-3 cue


@pytest.mark.parametrize("informative", [1, 3])
def test_ssl_layer_weights_move_to_the_one_layer_that_carries_the_label(informative):
    torch.manual_seed(0)
    layers, positions, hidden, classes = 5, 2, 16, 3
    labels = torch.randint(0, classes, (384,))
    states = torch.randn(384, layers, positions, hidden)
    states[:, informative, 0, :] += 1.5 * torch.randn(classes, hidden)[labels]  # the mean row of one layer only
    encoder = SSLEncoder(16, input_shape=(layers, positions, hidden))
    assert torch.allclose(encoder.layer_weights(), torch.full((layers,), 1 / layers))
    head = nn.Linear(16, classes)
    optimiser = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(10):
        for batch, target in zip(states.split(32), labels.split(32)):
            loss = nn.functional.cross_entropy(head(encoder(batch).pooled), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    weights = encoder.layer_weights()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    others = torch.cat([weights[:informative], weights[informative + 1 :]])
    assert weights[informative] > 2 * others.max()  # from uniform to over twice any other (~0.5 against ~0.13)


def metrics_csv(logger: CSVLogger) -> list[dict[str, str]]:
    with open(f"{logger.log_dir}/metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_layer_weights_are_logged_once_per_epoch_and_other_encoders_log_none(tmp_path):
    torch.manual_seed(0)
    logs = {}
    for kind in ENCODERS:
        net = audio_model(kind)
        logger = CSVLogger(tmp_path, name=kind)
        trainer(logger=logger, max_epochs=2, log_every_n_steps=1).fit(net, **loaders(ENCODERS[kind][1]))
        logs[kind] = (net, metrics_csv(logger))
    net, rows = logs["ssl"]
    logged = [row for row in rows if row.get(f"{LAYER_WEIGHT_PREFIX}0")]
    assert [row["epoch"] for row in logged] == ["0", "1"]
    final = [float(logged[-1][f"{LAYER_WEIGHT_PREFIX}{i}"]) for i in range(SSL_SHAPE[0])]
    assert f"{LAYER_WEIGHT_PREFIX}{SSL_SHAPE[0]}" not in logged[-1]
    assert final == pytest.approx(net.encoders["audio"].layer_weights().tolist(), abs=1e-6)
    assert final != pytest.approx([1 / SSL_SHAPE[0]] * SSL_SHAPE[0], abs=1e-4)  # they trained
    assert not any(key.startswith(LAYER_WEIGHT_PREFIX) for key in logs["egemaps"][1][0])


@pytest.mark.parametrize("kind", list(ENCODERS))
@pytest.mark.parametrize("strategy", [HSICStrategy, GradientReversalStrategy], ids=["hsic", "grl"])
def test_a_strategy_trains_unchanged_on_top_of_each_encoder(kind, strategy):
    torch.manual_seed(0)
    fit = trainer([strategy()], max_epochs=1)
    fit.fit(audio_model(kind), **loaders(ENCODERS[kind][1]))
    term = {HSICStrategy: "hsic/hsic", GradientReversalStrategy: "grl/adversary_ce"}[strategy]
    metrics = fit.callback_metrics
    assert torch.isfinite(metrics[f"train/{term}"]) and torch.isfinite(metrics["train/loss"])


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_a_checkpoint_reloads_with_the_audio_shape_in_its_hyperparameters(kind, tmp_path):
    torch.manual_seed(0)
    cls, shape = ENCODERS[kind]
    # The plain form a config gives (class_path without input_shape): the model supplies the shape.
    net = model(modalities="audio", audio_encoder={"class_path": f"{cls.__module__}.{cls.__name__}"}, audio_shape=shape)
    fit = trainer(max_epochs=1)
    fit.fit(net, **loaders(shape))
    fit.save_checkpoint(tmp_path / "run.ckpt")
    loaded = MultitaskAVModule.load_from_checkpoint(tmp_path / "run.ckpt").eval()
    assert loaded.hparams.audio_shape == shape and isinstance(loaded.encoders["audio"], cls)
    batch = next(iter(DataLoader(upstream_samples(shape, seed=1), batch_size=8)))
    expected = net.eval()(batch)["emotion_logits"]
    assert torch.equal(loaded(batch)["emotion_logits"], expected)  # running statistics and layer weights included


def test_the_model_passes_its_shape_only_to_encoders_that_take_one():
    net = model(modalities="audio", audio_shape=[12, 24])  # the log-mel CNN pools any shape and is called as before
    assert net.hparams.audio_shape == [12, 24] and type(net.encoders["audio"]).__name__ == "AudioEncoder"
    net = model(modalities="audio", audio_encoder=functools.partial(SSLEncoder), audio_shape=SSL_SHAPE)
    assert net.encoders["audio"].input_shape == tuple(SSL_SHAPE)  # a partial of the class is given it too


def outcome(strategy: str, seed: int, weights: list[float] | None) -> RunOutcome:
    """A run's outcome carrying only what the layer plot reads: its spec and metrics rows (blank cells where a row
    logs something else, as in a metrics.csv)."""
    keys = [f"{LAYER_WEIGHT_PREFIX}{i}" for i in range(len(weights or []))]
    history = [
        {"epoch": "0", "val/emotion/uar": "0.5", **{key: "" for key in keys}},
        {"epoch": "0", "val/emotion/uar": "", **{key: "0.25" for key in keys}},  # not the final epoch's weights
        {"epoch": "1", "val/emotion/uar": "", **{key: str(w) for key, w in zip(keys, weights or [])}},
        {"epoch": "1", "val/emotion/uar": "0.6", **{key: "" for key in keys}},
    ]
    return RunOutcome(RunSpec(strategy, f"{strategy}.yaml", seed), {}, None, np.zeros((2, 2)), ["a"], ["s"], history)


def test_the_report_plots_the_final_layer_weights_per_strategy_averaged_over_seeds(tmp_path):
    runs = [outcome("none", 0, [0.1, 0.2, 0.7]), outcome("none", 1, [0.3, 0.2, 0.5])]
    runs.append(outcome("hsic", 0, [0.5, 0.3, 0.2]))
    weights = layer_weights_by_strategy(runs)
    assert weights.keys() == {"none", "hsic"}
    np.testing.assert_allclose(weights["none"], [0.2, 0.2, 0.6])
    path = plots.plot_layer_weights(weights, tmp_path / "report/layers.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert layer_weights_by_strategy([outcome("none", 0, None)]) == {}  # a log-mel run: no plot

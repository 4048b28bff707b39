"""Training on the built-in synthetic corpus: the baseline learns, strategies remove identity from
z_emotion, checkpoints reload, runs are deterministic."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.synthetic import SyntheticConfig
from avdisentangle.evaluation.probe import extract_embeddings, probe_accuracy
from avdisentangle.models.multitask import MultitaskAVModule
from avdisentangle.strategies import STRATEGIES
from tests import helpers

# Strongly entangled: each speaker mostly acts two emotions, so z_emotion picks up identity.
ENTANGLED = SyntheticConfig(
    num_speakers=6, clips_per_speaker=30, speaker_emotion_correlation=0.8, min_duration_s=1.0, max_duration_s=1.5
)
FEATURES = FeatureConfig(window_s=1.0, n_mels=32, num_frames=4, face_size=32)
EPOCHS = 20


@pytest.fixture(scope="module")
def entangled(tmp_path_factory, single_thread):
    """The corpus every test here trains on, on one thread for all of them: the runs they compare then see
    the same kernels whatever order the tests run in (a model trained on two threads differs in the last bits)."""
    dm = AVDataModule(
        synthetic=ENTANGLED,
        features=FEATURES,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        batch_size=16,
        prepare_workers=0,
        progress=False,
    )
    dm.ready()
    return dm


def new_model(dm: AVDataModule, **overrides) -> MultitaskAVModule:
    return MultitaskAVModule.for_data(dm, **overrides)


def trainer(epochs: int, callbacks=(), **overrides) -> L.Trainer:
    """The shared quiet trainer, deterministic: these tests compare runs."""
    return helpers.trainer(callbacks, max_epochs=epochs, deterministic=True, **overrides)


def train(
    dm: AVDataModule, strategy: str, epochs: int = EPOCHS, seed: int = 0, weight: float = 1.0, **hparams
) -> tuple[MultitaskAVModule, dict]:
    L.seed_everything(seed, verbose=False)
    model = new_model(dm, **hparams)
    callbacks = [STRATEGIES[strategy](weight=weight)] if STRATEGIES[strategy] else []
    run = trainer(epochs, callbacks)
    run.fit(model, dm)
    return model, run.test(model, dm, verbose=False)[0]


@pytest.fixture(scope="module")
def trained(entangled):
    """Models trained with the same seed, by strategy name (trained lazily, once per module)."""
    cache: dict[tuple[str, float], tuple[MultitaskAVModule, dict]] = {}

    def get(strategy: str, weight: float = 1.0):
        if (strategy, weight) not in cache:
            cache[strategy, weight] = train(entangled, strategy, weight=weight)
        return cache[strategy, weight]

    return get


def speaker_probe(dm: AVDataModule, model: MultitaskAVModule, embedding: str = "z_emotion") -> float:
    train_set, test_set = extract_embeddings(model, dm.loader("train")), extract_embeddings(model, dm.loader("test"))
    return probe_accuracy(
        getattr(train_set, embedding), train_set.speaker, getattr(test_set, embedding), test_set.speaker
    )


def test_baseline_beats_chance_on_both_tasks(trained, entangled):
    _, metrics = trained("none")
    assert metrics["test/emotion/uar"] > 2.5 / entangled.num_emotions
    assert metrics["test/speaker/uar"] > 3.0 / entangled.num_speakers


def test_an_emotion_head_reading_identity_learns_and_is_probed_on_z_emotion_alone(entangled, single_thread):
    """10 epochs (test UAR 0.58 at 8, 0.67 at 12 on seed 0; 0.53 and 0.70 with the option off)."""
    model, metrics = train(entangled, "none", epochs=10, emotion_reads_identity=True)
    assert metrics["test/emotion/uar"] > 2.5 / entangled.num_emotions
    test_set = extract_embeddings(model, entangled.loader("test"))
    assert test_set.z_emotion.shape[1] == model.hparams.emotion_dim  # what the probes read: not the head's input


def test_every_strategy_composes_with_an_emotion_head_reading_identity(entangled):
    L.seed_everything(0, verbose=False)
    run = trainer(1, [cls() for cls in STRATEGIES.values() if cls])
    run.fit(new_model(entangled, emotion_reads_identity=True), entangled)
    logged = {key.split("/")[1] for key in run.logged_metrics if key.startswith("train/")}
    assert {name for name, cls in STRATEGIES.items() if cls} <= logged
    assert torch.isfinite(run.logged_metrics["train/loss"])


@pytest.mark.parametrize(
    "strategy, weight, uar_tolerance", [("confusion", 0.6, 0.08), ("hsic", 0.5, 0.08), ("grl", 1.0, None)]
)
def test_strategy_lowers_speaker_probe_on_z_emotion(trained, entangled, strategy, weight, uar_tolerance):
    """Less identity in z_emotion than the baseline at the same seed. Confusion and HSIC keep
    emotion UAR within a few points; gradient reversal only removes identity at a strength that
    costs emotion accuracy on this corpus (measured: see README), so only its effect is asserted.
    Measured on one thread, seed 0 (baseline probe 1.00, UAR 0.67): confusion at 0.6 (the benchmark's
    default) 0.86 at UAR 0.70; hsic at 0.5 0.93 at 0.66 (at 0.3 0.90 at 0.76); grl at 1 0.86 at 0.45."""
    baseline_model, baseline = trained("none", 1.0)
    model, metrics = trained(strategy, weight)
    baseline_leak, leak = speaker_probe(entangled, baseline_model), speaker_probe(entangled, model)
    print(
        f"{strategy}: probe speaker from z_emotion {baseline_leak:.3f} -> {leak:.3f}; "
        f"emotion UAR {baseline['test/emotion/uar']:.3f} -> {metrics['test/emotion/uar']:.3f}"
    )
    assert leak < baseline_leak - 0.05
    if uar_tolerance is not None:
        assert metrics["test/emotion/uar"] > baseline["test/emotion/uar"] - uar_tolerance
    assert (
        speaker_probe(entangled, model, "z_identity") > 3.0 / entangled.num_speakers
    )  # identity kept where it belongs


@pytest.mark.parametrize("strategy", [name for name, cls in STRATEGIES.items() if cls])
def test_strategy_logs_its_terms_and_its_checkpoint_reloads(entangled, strategy, tmp_path):
    L.seed_everything(0, verbose=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    run = trainer(2, [STRATEGIES[strategy](), checkpoint], enable_checkpointing=True)
    model = new_model(entangled)
    run.fit(model, entangled)
    logged = [key for key in run.logged_metrics if key.startswith(f"train/{strategy}/")]
    assert logged, f"no train/{strategy}/* terms in {sorted(run.logged_metrics)}"
    expected = run.validate(model, entangled, verbose=False)[0]
    fresh = trainer(1, [STRATEGIES[strategy]()])
    reloaded = fresh.validate(new_model(entangled), entangled, ckpt_path=str(tmp_path / "last.ckpt"), verbose=False)[0]
    assert reloaded.keys() == expected.keys()
    for key in expected:
        assert reloaded[key] == pytest.approx(expected[key], abs=1e-6), key


def test_same_seed_same_metrics(entangled):
    first = train(entangled, "grl", epochs=2)[1]
    second = train(entangled, "grl", epochs=2)[1]
    assert first == second
    assert train(entangled, "grl", epochs=2, seed=1)[1] != first


def test_two_strategies_stack(entangled):
    L.seed_everything(0, verbose=False)
    run = trainer(1, [STRATEGIES["grl"](), STRATEGIES["orthogonal"]()])
    run.fit(new_model(entangled), entangled)
    assert {"train/grl/adversary_ce", "train/orthogonal/cross_correlation"} <= set(run.logged_metrics)


def test_bf16_mixed_precision_trains_on_cpu(entangled):
    L.seed_everything(0, verbose=False)
    run = trainer(1, [STRATEGIES["confusion"]()], precision="bf16-mixed")
    run.fit(new_model(entangled), entangled)
    assert torch.isfinite(run.logged_metrics["train/loss"])

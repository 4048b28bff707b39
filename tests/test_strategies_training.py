"""Disentanglement strategies with the Lightning module: attaching, training together, checkpoints."""

from __future__ import annotations

import warnings

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from avdisentangle.models import MultitaskAVModule
from avdisentangle.strategies import (
    CLUBStrategy,
    ConfusionStrategy,
    GradientReversalStrategy,
    HSICStrategy,
    OrthogonalStrategy,
)
from avdisentangle.strategies.schedules import dann_ramp
from tests.helpers import TinyAVData, batch_of, model, trainer

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------- with the Lightning module
def test_setup_is_idempotent_and_the_same_strategy_twice_raises() -> None:
    net = model()
    first = GradientReversalStrategy()
    first.setup(None, net, "fit")
    adversary = net.strategy_modules["grl"]
    first.setup(None, net, "validate")
    assert net.strategy_modules["grl"] is adversary and first.module is adversary
    with pytest.raises(ValueError, match="'grl' is already attached"):
        GradientReversalStrategy(weight=0.1).setup(None, net, "fit")


def test_the_same_strategy_twice_in_a_trainer_raises() -> None:
    # Strategies keep their settings in the checkpoint, so Lightning refuses two with one state key
    # (the command line says it in one line first: tests/test_run_records.py).
    with pytest.raises(RuntimeError, match="more than one stateful callback of type `HSICStrategy`"):
        trainer([HSICStrategy(), HSICStrategy(conditional=False)]).fit(model(), datamodule=TinyAVData())


@pytest.mark.parametrize(
    ("strategies", "precision"),
    [
        (lambda: [GradientReversalStrategy(weight=0.5), HSICStrategy(weight=2.0)], "bf16-mixed"),
        (lambda: [ConfusionStrategy(weight=0.3), OrthogonalStrategy(weight=1.0)], "32-true"),
    ],
    ids=["grl+hsic-bf16", "confusion+orthogonal-32"],
)
def test_two_strategies_train_together_and_log_their_terms(strategies, precision: str) -> None:
    L.seed_everything(0)
    callbacks = strategies()
    net = model()
    for callback in callbacks:  # build the owned modules now to snapshot them; fit's setup must reuse them
        callback.setup(None, net, "fit")
    before = {
        name: [p.detach().clone() for p in module.parameters()]
        for name, module in net.strategy_modules.items()
        if any(True for _ in module.parameters())  # HSIC owns only buffers (schedule value, running cross-covariance)
    }
    fit = trainer(callbacks, precision=precision)
    fit.fit(net, datamodule=TinyAVData())

    metrics = fit.callback_metrics
    terms = {
        GradientReversalStrategy: ["grl/adversary_ce"],
        HSICStrategy: ["hsic/hsic"],
        ConfusionStrategy: ["confusion/adversary_ce", "confusion/confusion"],
        OrthogonalStrategy: ["orthogonal/cross_correlation"],
    }
    names = [term for cb in callbacks for term in terms[type(cb)]]
    assert {f"{split}/{term}" for split in ("train", "val") for term in names} <= set(metrics)
    if isinstance(callbacks[0], GradientReversalStrategy):
        assert metrics["train/grl/lambda"] == pytest.approx(dann_ramp(5 / 6), abs=1e-6)  # last of 6 steps
    # the logged loss is exactly the task terms plus every strategy term
    for split in ("train", "val"):
        parts = ["emotion/ce", "speaker/ce", *names]
        assert metrics[f"{split}/loss"] == pytest.approx(sum(float(metrics[f"{split}/{p}"]) for p in parts), abs=1e-5)
    # owned modules were optimised with the model; the module forgets the callbacks after the run
    assert len(before) == sum(type(cb) in (GradientReversalStrategy, ConfusionStrategy) for cb in callbacks)
    for name, old in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(old, net.strategy_modules[name].parameters())), name
    assert net.attached_strategies == {}


def test_checkpoint_with_strategy_modules_reloads(tmp_path) -> None:
    L.seed_everything(0)
    data = TinyAVData()
    net = model()
    fit = trainer([GradientReversalStrategy(), OrthogonalStrategy()])
    fit.fit(net, datamodule=data)
    path = tmp_path / "run.ckpt"
    fit.save_checkpoint(path)
    (expected,) = fit.validate(net, datamodule=data, verbose=False)

    L.seed_everything(1)  # a differently initialised model: everything must come from the checkpoint
    fresh = model()
    (restored,) = trainer([GradientReversalStrategy(), OrthogonalStrategy()]).validate(
        fresh, datamodule=data, ckpt_path=path, verbose=False
    )
    assert "val/grl/adversary_ce" in restored
    assert restored.keys() == expected.keys()
    for key, value in expected.items():
        assert restored[key] == pytest.approx(value, abs=1e-6), key

    with pytest.warns(UserWarning, match=r"strategies \['grl'\] that are not configured"):
        trainer([]).validate(model(), datamodule=data, ckpt_path=path, verbose=False)

    with pytest.warns(UserWarning, match=r"strategies \['grl'\] that are not configured"):
        backbone = MultitaskAVModule.load_from_checkpoint(path).eval()
    assert len(backbone.strategy_modules) == 0 and not backbone.training
    batch = batch_of()
    net.eval()
    with torch.no_grad():
        assert torch.allclose(backbone(batch)["z_emotion"], net(batch)["z_emotion"], atol=1e-6)


class WhereTrainingRuns(L.Callback):
    """Records the devices of the model's and the strategies' parameters at the first training step:
    after `fit` returns, Lightning has moved the model back to the CPU."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.model_devices = {p.device.type for p in pl_module.parameters()}
            self.strategy_devices = {p.device.type for p in pl_module.strategy_modules.parameters()}
            self.batch_devices = {value.device.type for value in batch.values()}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_all_strategies_train_together_on_gpu_in_mixed_precision() -> None:
    L.seed_everything(0)
    net = model(fusion="attention", emotion_class_weights=[1.0, 2.0, 1.0])
    where = WhereTrainingRuns()
    adversarial = [GradientReversalStrategy(adversary_steps=3), ConfusionStrategy(adversary_steps=2)]
    owned = [OrthogonalStrategy(), HSICStrategy(), CLUBStrategy()]
    callbacks = [*adversarial, *owned, where]  # extra adversary steps run in float32
    fit = trainer(callbacks, accelerator="gpu", devices=1, precision="16-mixed")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Detected call of `lr_scheduler.step\(\)` before")
        fit.fit(net, datamodule=TinyAVData())
    assert where.model_devices == where.strategy_devices == where.batch_devices == {"cuda"}
    assert all(torch.isfinite(v) for k, v in fit.callback_metrics.items() if k.startswith(("train/", "val/")))


def test_steps_the_gradient_scaler_skips_do_not_advance_the_schedule() -> None:
    """Under 16-mixed the GradScaler skips the steps whose gradients overflow while it calibrates; the cosine
    schedule must count only the steps that ran (and torch must not warn about the order of the two)."""
    L.seed_everything(0)
    net = model()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)  # high enough that the first steps overflow in float16
    fit = trainer(plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], max_epochs=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Detected call of `lr_scheduler.step\(\)` before")
        fit.fit(net, datamodule=TinyAVData())
    optimizer_steps = int(next(iter(fit.optimizers[0].state.values()))["step"])
    assert 0 < optimizer_steps < fit.global_step  # some steps were skipped, some ran
    assert fit.lr_scheduler_configs[0].scheduler.last_epoch == optimizer_steps

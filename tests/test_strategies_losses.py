"""Disentanglement strategies in isolation: the registry, the schedules and each strategy's loss maths."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from avdisentangle.lightning_cli import file_callbacks
from avdisentangle.strategies import (
    STRATEGIES,
    ConfusionStrategy,
    GradientReversalStrategy,
    HSICStrategy,
    OrthogonalStrategy,
)
from avdisentangle.strategies.batch_stats import batch_standardise
from avdisentangle.strategies.grl import grad_reverse
from avdisentangle.strategies.hsic import MOMENTUM, group_cross_covariances
from avdisentangle.strategies.orthogonal import mean_squared_correlation
from avdisentangle.strategies.schedules import Schedule, ScheduleState, dann_ramp
from tests.helpers import batch_of, model

STRATEGY_CONFIGS = Path(__file__).resolve().parents[1] / "experiments/configs/strategy"

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------------------ registry
def test_registry_holds_the_strategy_each_config_file_names() -> None:
    """Every config file's callback is the registered class of the file's name, and every registered
    strategy has a config file ("none" configures no callback)."""
    named = {}
    for path in STRATEGY_CONFIGS.glob("*.yaml"):
        callbacks = file_callbacks(path)
        named[path.stem] = callbacks[0]["class_path"] if callbacks else None
    registered = {name: cls and f"avdisentangle.strategies.{cls.__name__}" for name, cls in STRATEGIES.items()}
    assert named == registered
    assert STRATEGIES["none"] is None and {"grl", "confusion", "orthogonal", "hsic"} <= set(STRATEGIES)


# ----------------------------------------------------------------------------------------- GRL
def test_gradient_reversal_is_identity_forward_and_scaled_negation_backward() -> None:
    x = torch.randn(5, 3, requires_grad=True)
    upstream = torch.randn(5, 3)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * upstream).sum().backward()
    assert torch.allclose(x.grad, -0.3 * upstream)


def test_dann_schedule_values() -> None:
    assert dann_ramp(0.0) == 0.0
    assert dann_ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.98661
    assert dann_ramp(0.5) == pytest.approx(0.986614, abs=1e-6)
    assert dann_ramp(1.0) == pytest.approx(0.999909, abs=1e-6)
    assert Schedule("dann", gamma=2.0, peak=2.0).at(0.5) == pytest.approx(2 * (2 / (1 + math.exp(-1)) - 1))
    assert Schedule("constant", peak=0.7).at(0.0) == 0.7


def test_grl_lambda_follows_training_progress() -> None:
    halfway = SimpleNamespace(global_step=50, estimated_stepping_batches=100)
    unbounded = SimpleNamespace(global_step=50, estimated_stepping_batches=float("inf"))

    def lambda_at(trainer, **kwargs) -> float:
        return float(ScheduleState().advance(GradientReversalStrategy(**kwargs).schedule, trainer))

    assert lambda_at(halfway, schedule="dann") == pytest.approx(dann_ramp(0.5))
    assert lambda_at(unbounded, schedule="dann", lambda_max=0.5) == pytest.approx(0.5 * dann_ramp(1.0))
    assert lambda_at(halfway, schedule="constant", lambda_max=0.7) == pytest.approx(0.7)
    for strategy in (GradientReversalStrategy, HSICStrategy):
        with pytest.raises(ValueError, match="constant, dann"):
            strategy(schedule="linear")


def test_grl_adversary_gradient_reaches_encoder_reversed() -> None:
    net = model(dropout=0.0).eval()
    strategy = GradientReversalStrategy(weight=2.0, schedule="constant", lambda_max=0.5)
    strategy.setup(None, net, "fit")
    strategy.schedule_state().scale.fill_(0.5)
    batch = batch_of()
    z = net(batch)["z_emotion"].detach().requires_grad_(True)
    strategy.loss_terms({"z_emotion": z}, batch)["adversary_ce"].backward()
    reversed_grad = z.grad.clone()
    z.grad = None
    (2.0 * torch.nn.functional.cross_entropy(strategy.module.mlp(z), batch["speaker"])).backward()
    assert torch.allclose(reversed_grad, -0.5 * z.grad, atol=1e-6)


# ----------------------------------------------------------------------------------- confusion
def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]


def test_confusion_terms_do_not_leak_into_each_other() -> None:
    torch.manual_seed(0)
    net = model(dropout=0.0).eval()  # deterministic forward, so three passes see the same graph
    strategy = ConfusionStrategy(weight=0.7)
    strategy.setup(None, net, "fit")
    adversary = net.strategy_modules["confusion"]
    trunk = [net.encoders, net.fusion, net.emotion_branch]
    batch = batch_of()

    def backward(select: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        net.zero_grad()
        outputs = net(batch)
        terms = net.strategy_losses(outputs, batch)
        task = sum(net.task_losses(outputs, batch).values())
        loss = {
            "total": task + sum(terms.values()),
            "adversary": terms["confusion/adversary_ce"],
            "encoder": task + terms["confusion/confusion"],
        }[select]
        loss.backward()
        return grads(adversary), [g for m in trunk for g in grads(m)]

    total_adversary, total_trunk = backward("total")
    alone_adversary, trunk_without_adversary = backward("adversary")
    adversary_without_confusion, alone_trunk = backward("encoder")
    assert all(g.abs().sum() > 0 for g in total_adversary)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(total_adversary, alone_adversary))
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(total_trunk, alone_trunk))
    assert all(g.abs().sum() == 0 for g in trunk_without_adversary)
    assert all(g.abs().sum() == 0 for g in adversary_without_confusion)
    # the confusion term really does move the encoder
    net.zero_grad()
    net.strategy_losses(net(batch), batch)["confusion/confusion"].backward()
    assert sum(p.grad.abs().sum() for p in net.emotion_branch.parameters()) > 0


def test_confusion_asks_for_uniform_over_the_speakers_training_has_shown_only() -> None:
    """Speakers held out of training (speaker folds) get no probability from the adversary, which never saw
    them; a target that asks for them is out of reach, and pushing towards it collapsed emotion."""
    torch.manual_seed(0)
    net = model(num_speakers=6, dropout=0.0)  # the batch's speakers are 0-3 of 6
    strategy = ConfusionStrategy(weight=1.0)
    strategy.setup(None, net, "fit")
    adversary = net.strategy_modules["confusion"]
    with torch.no_grad():  # an adversary uniform over speakers 0-3 that gives 4 and 5 (never seen) nothing
        adversary[-1].weight.zero_()
        adversary[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, -30.0, -30.0]))
    batch = batch_of()
    assert set(batch["speaker"].tolist()) == {0, 1, 2, 3}
    net.eval()  # before any training batch (Lightning's sanity check): every speaker
    everyone = net.strategy_losses(net(batch), batch)["confusion/confusion"].item()
    assert everyone == pytest.approx((4 * math.log(4) + 2 * (30 + math.log(4))) / 6, abs=1e-3)
    net.train()  # a training batch shows speakers 0-3: the target spans them, and this adversary is at its minimum
    assert net.strategy_losses(net(batch), batch)["confusion/confusion"].item() == pytest.approx(math.log(4), abs=1e-3)
    assert adversary.seen.tolist() == [True] * 4 + [False] * 2


# ---------------------------------------------------------------------------------- orthogonal
def test_orthogonal_penalty_small_for_independent_and_large_for_shared_embeddings() -> None:
    g = torch.Generator().manual_seed(0)
    z_emotion, z_identity = torch.randn(4096, 8, generator=g), torch.randn(4096, 8, generator=g)
    strategy = OrthogonalStrategy(weight=2.0)
    independent = strategy.loss_terms({"z_emotion": z_emotion, "z_identity": z_identity}, {})["cross_correlation"]
    shared = strategy.loss_terms({"z_emotion": z_emotion, "z_identity": z_emotion}, {})["cross_correlation"]
    assert independent < 2.0 * 3 / 4096  # sampling noise only: E = 1/B per pair
    assert shared == pytest.approx(2.0 / 8, rel=0.05)  # the 8 diagonal correlations are 1
    mixed = 3.0 * z_emotion @ torch.randn(8, 8, generator=g)  # any linear mix of z_emotion is penalised too
    assert mean_squared_correlation(z_emotion, mixed) > 50 * mean_squared_correlation(z_emotion, z_identity)


# ---------------------------------------------------------------------------------------- HSIC
def entangled_labels(
    n: int, g: torch.Generator, speakers: int = 6, emotions: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Speakers who mostly act one emotion each (80 %), as in entangled corpora."""
    speaker = torch.randint(0, speakers, (n,), generator=g)
    mostly = torch.rand(n, generator=g) < 0.8
    emotion = torch.where(mostly, speaker % emotions, torch.randint(0, emotions, (n,), generator=g))
    return speaker, emotion


def hsic_strategy(dim: int = 16, speakers: int = 12, emotions: int = 6, **settings) -> HSICStrategy:
    """An HSICStrategy with its running mean built as `setup` builds it, for z of `dim` dimensions."""
    strategy = HSICStrategy(**settings)
    hparams = SimpleNamespace(num_emotions=emotions, emotion_dim=dim, num_speakers=speakers)
    strategy.module = strategy.build_modules(SimpleNamespace(hparams=hparams))
    return strategy


def penalty(strategy: HSICStrategy, z: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    return strategy.loss_terms({"z_emotion": z}, {"speaker": speaker, "emotion": emotion})["hsic"]


def batch_hsic(z: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor | None, speakers: int) -> float:
    """One batch's own share-weighted ||C||^2 (the per-batch V-statistic), without the running mean."""
    _, covariances, shares = group_cross_covariances(z, speaker, emotion, speakers)
    return float((shares * covariances.pow(2).sum((1, 2))).sum())


NOISE_SHARE = MOMENTUM / (2 - MOMENTUM)  # what a running mean keeps of independent batches' noise: 1/19


def running_hsic_over_batches(noise: float, speaker_effect: float = 0.0, batches: int = 200) -> tuple[float, float]:
    """(the running penalty, the mean of each batch's own ||C||^2) after `batches` batches of 64 shaped like
    the corpora (6 emotions, 12 speakers who mostly act one emotion, 16 dimensions): z is an emotion
    effect plus noise, plus a per-speaker effect when `speaker_effect` > 0; otherwise z is independent
    of the speaker given the emotion."""
    g = torch.Generator().manual_seed(0)
    emotion_effect, speaker_offsets = torch.randn(6, 16, generator=g), torch.randn(12, 16, generator=g)
    strategy, per_batch = hsic_strategy(weight=1.0, schedule="constant"), []
    for _ in range(batches):
        speaker, emotion = entangled_labels(64, g, speakers=12, emotions=6)
        z = emotion_effect[emotion] + speaker_effect * speaker_offsets[speaker]
        z = z + noise * torch.randn(64, 16, generator=g)
        value = float(penalty(strategy, z, speaker, emotion))
        per_batch.append(batch_hsic(z, speaker, emotion, 12))
    return value, sum(per_batch) / batches


def test_running_hsic_settles_near_zero_under_independence_given_emotion() -> None:
    """Within-emotion variance that carries no speaker information costs almost nothing: each batch's own
    estimate (the V-statistic) is its noise, which grows with the within-emotion spread (0.13, 0.59, 0.98
    here); the running mean keeps NOISE_SHARE of it (0.007, 0.030, 0.050)."""
    for noise in (0.3, 1.0, 3.0):
        running, per_batch = running_hsic_over_batches(noise)
        assert running == pytest.approx(NOISE_SHARE * per_batch, rel=0.3), f"noise {noise}"
        assert running < 0.06  # standardised z: no batch's noise is much above 1


def test_running_hsic_detects_speaker_information_beyond_emotion() -> None:
    assert running_hsic_over_batches(1.0, speaker_effect=1.0, batches=30)[0] > 0.5  # 1.0
    assert running_hsic_over_batches(1.0, speaker_effect=0.3, batches=30)[0] > 0.1  # 0.16: a weak effect shows too


def test_running_hsic_gradient_is_that_of_the_population_value() -> None:
    """d penalty / d C_batch = 2 share C_bar, with C_bar the updated running mean: the gradient of ||E[C]||^2."""
    memory = hsic_strategy(dim=3, speakers=2, emotions=2).module
    memory.mean[1] = torch.ones(3, 2)
    covariances = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0), requires_grad=True)
    shares = torch.tensor([0.25, 0.75])
    value = memory.penalty(torch.tensor([0, 1]), covariances, shares)
    mixed = torch.stack([0.1 * covariances[0], 0.9 + 0.1 * covariances[1]]).detach()
    assert value.item() == pytest.approx(float((shares * mixed.pow(2).sum((1, 2))).sum()))
    (grad,) = torch.autograd.grad(value, covariances)
    assert torch.allclose(grad, 2 * shares[:, None, None] * mixed)
    assert torch.equal(memory.mean, mixed)  # training updates the mean
    memory.eval()
    memory.penalty(torch.tensor([0, 1]), torch.zeros(2, 3, 2), shares)
    assert torch.equal(memory.mean, mixed)  # evaluation reads it only


def unbiased_hsic(kernel_a: torch.Tensor, kernel_b: torch.Tensor) -> torch.Tensor:
    """The per-batch estimator HSICStrategy used before (Song et al. 2012), to show what it allowed."""
    n = kernel_a.shape[0]
    a, b = kernel_a - torch.diag(torch.diagonal(kernel_a)), kernel_b - torch.diag(torch.diagonal(kernel_b))
    trace, sums = (a * b).sum(), a.sum() * b.sum() / ((n - 1) * (n - 2))
    return (trace + sums - 2.0 / (n - 2) * (a @ b).sum()) / (n * (n - 3))


def old_conditional_hsic(z: torch.Tensor, speaker: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    z, onehot = batch_standardise(z), torch.nn.functional.one_hot(speaker).float()
    counts = torch.bincount(emotion)
    kept = [e for e, n in enumerate(counts.tolist()) if n >= 4]
    total = sum(counts[e] for e in kept)
    rows = [emotion == e for e in kept]
    return sum(counts[e] / total * unbiased_hsic(z[r] @ z[r].T, onehot[r] @ onehot[r].T) for e, r in zip(kept, rows))


def test_an_encoder_cannot_drive_the_penalty_below_independence() -> None:
    """A linear encoder of inputs holding the emotion, the speaker and noise, trained on the penalty alone.
    The old estimator rewards it below zero, and it gets there by using the speaker more (pushing clips of
    the same speaker apart); the running penalty is never below zero, and the encoder reaches its
    minimum by dropping the speaker."""
    g = torch.Generator().manual_seed(0)
    speaker, emotion = entangled_labels(64, g, speakers=12, emotions=6)
    inputs = torch.cat([torch.eye(6)[emotion], torch.eye(12)[speaker], torch.randn(64, 8, generator=g)], dim=1)
    start = torch.randn(26, 8, generator=g)

    def train(loss) -> tuple[list[float], torch.Tensor]:
        weights = torch.nn.Parameter(start.clone())
        optimiser, values = torch.optim.Adam([weights], lr=0.05), []
        for _ in range(200):
            value = loss(inputs @ weights)
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            values.append(value.item())
        return values, weights.detach()

    def speaker_share(weights: torch.Tensor) -> float:
        return float(weights[6:18].norm() / weights.norm())  # of the weights, those on the speaker's inputs

    old, old_weights = train(lambda z: old_conditional_hsic(z, speaker, emotion))
    assert min(old) < -0.5 and speaker_share(old_weights) > speaker_share(start)  # rewarded for reading the speaker
    strategy = hsic_strategy(dim=8, weight=1.0, schedule="constant")
    new, new_weights = train(lambda z: penalty(strategy, z, speaker, emotion))
    assert min(new) >= 0 and speaker_share(new_weights) < 0.8 * speaker_share(start)
    before, after = (batch_hsic(inputs @ w, speaker, emotion, 12) for w in (start, new_weights))
    assert after < 0.1 * before  # towards independence: 0.54 -> 0.03


def test_hsic_ignores_the_scale_of_z() -> None:
    """z is standardised first: shrinking z_emotion cannot lower the penalty."""
    g = torch.Generator().manual_seed(0)
    speaker, emotion = entangled_labels(64, g)
    z = torch.randn(6, 16, generator=g)[speaker] + torch.randn(64, 16, generator=g)
    assert batch_hsic(z, speaker, emotion, 6) == pytest.approx(batch_hsic(1e-2 * z, speaker, emotion, 6), rel=1e-2)


def test_conditional_hsic_ignores_speaker_information_carried_by_emotion() -> None:
    g = torch.Generator().manual_seed(0)
    speaker, emotion = entangled_labels(600, g)
    emotion_only = 2.0 * torch.randn(3, 16, generator=g)[emotion] + torch.randn(600, 16, generator=g)
    assert batch_hsic(emotion_only, speaker, None, 6) > 0.5  # speaker and emotion are entangled
    assert batch_hsic(emotion_only, speaker, emotion, 6) < 0.05
    # each speaker acts a single emotion: z "knows" the speaker only through the emotion
    speaker = 2 * emotion + torch.randint(0, 2, (600,), generator=g)
    emotion = speaker // 2
    assert batch_hsic(emotion_only, speaker, None, 6) > 0.5
    assert batch_hsic(emotion_only, speaker, emotion, 6) < 0.05


def test_hsic_is_finite_and_differentiable_on_tiny_batches() -> None:
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    batch = {"speaker": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), "emotion": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])}
    for conditional in (False, True):
        strategy = hsic_strategy(dim=4, speakers=4, emotions=2, conditional=conditional)
        value = strategy.loss_terms({"z_emotion": z}, batch)["hsic"]
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(value) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert group_cross_covariances(z[:5], batch["speaker"][:5], None, 4) is None  # too few rows to standardise
    assert group_cross_covariances(z, batch["speaker"], torch.arange(8) % 3, 4) is None  # no emotion with 4 rows
    assert hsic_strategy(dim=4, speakers=4, emotions=2).loss_terms(
        {"z_emotion": z[:3]}, {k: v[:3] for k, v in batch.items()}
    )["hsic"] == 0

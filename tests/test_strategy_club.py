"""CLUB: q learns the speaker, the encoder lowers the bound through z only, conditioning spares the emotion,
and nothing below zero is rewarded."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avdisentangle.strategies import CLUBStrategy, HSICStrategy
from tests.helpers import NUM_EMOTIONS, NUM_SPEAKERS, SMALL, TinyAVData, model, trainer

N = 96
NOISE = SMALL["emotion_dim"] - NUM_EMOTIONS  # the emotion and noise alone fill z_emotion


def labels(entangled: bool = False, seed: int = 0) -> dict[str, Tensor]:
    """Speakers and emotions of N rows: independent, or each speaker acting mostly one emotion."""
    g = torch.Generator().manual_seed(seed)
    speakers = torch.randint(0, NUM_SPEAKERS, (N,), generator=g)
    emotions = torch.randint(0, NUM_EMOTIONS, (N,), generator=g)
    if entangled:
        acted = torch.rand(N, generator=g) < 0.8
        emotions = torch.where(acted, speakers % NUM_EMOTIONS, emotions)
    return {"speaker": speakers, "emotion": emotions}


def features(batch: dict[str, Tensor], speaker: bool = True, seed: int = 1) -> Tensor:
    """Rows holding the emotion, the speaker too unless told otherwise, and noise."""
    g = torch.Generator().manual_seed(seed)
    parts = [2 * F.one_hot(batch["emotion"], NUM_EMOTIONS).float(), torch.randn(N, NOISE, generator=g)]
    if speaker:
        parts.append(2 * F.one_hot(batch["speaker"], NUM_SPEAKERS).float())
    return torch.cat(parts, dim=1)


def built(**settings) -> CLUBStrategy:
    strategy = CLUBStrategy(**{"hidden_dim": 32, **settings})
    strategy.setup(None, model(), "fit")
    return strategy


def fit_q(strategy: CLUBStrategy, z: Tensor, batch: dict[str, Tensor], steps: int = 150) -> list[float]:
    """Train q alone on its `q_nll` term; the term after each step."""
    optimiser = torch.optim.Adam(strategy.module.q.parameters(), lr=1e-2)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        nll = strategy.loss_terms({"z_emotion": z}, batch)["q_nll"]
        nll.backward()
        optimiser.step()
        history.append(nll.item())
    optimiser.zero_grad()
    return history


def refitted_estimate(encode, entangled: bool = False, **settings) -> float:
    """The CLUB estimate of a fresh q trained on `encode(rows)` and read on held-out rows (q would memorise
    the noise of the rows it trained on)."""
    torch.manual_seed(0)
    strategy = built(**settings)
    train, held_out = labels(entangled, seed=0), labels(entangled, seed=2)
    fit_q(strategy, encode(train, seed=1).detach(), train)
    return float(strategy.estimate(encode(held_out, seed=3).detach(), held_out))


def test_q_learns_the_speaker_and_the_bound_is_positive_when_z_carries_it() -> None:
    torch.manual_seed(0)
    batch = labels()
    z = nn.Linear(NUM_EMOTIONS + NOISE + NUM_SPEAKERS, SMALL["emotion_dim"])(features(batch)).detach()
    strategy = built()
    history = fit_q(strategy, z, batch)
    assert history[-1] < 0.5 * history[0]  # q's log-likelihood rises as it trains
    assert float(strategy.estimate(z, batch)) > 0.5
    assert refitted_estimate(lambda rows, seed: features(rows, speaker=False, seed=seed)) < 0.2


def test_encoder_steps_on_the_club_term_remove_the_speaker_and_leave_q_alone() -> None:
    torch.manual_seed(0)
    batch = labels()
    x = features(batch)
    encoder = nn.Linear(x.shape[1], SMALL["emotion_dim"])
    def encoded(rows: dict[str, Tensor], seed: int) -> Tensor:
        return encoder(features(rows, seed=seed))

    before = refitted_estimate(encoded)
    strategy = built()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    for _ in range(40):
        fit_q(strategy, encoder(x).detach(), batch, steps=5)
        q_before = [p.detach().clone() for p in strategy.module.q.parameters()]
        optimiser.zero_grad()
        strategy.loss_terms({"z_emotion": encoder(x)}, batch)["club"].backward()
        assert all(p.grad is None for p in strategy.module.q.parameters())  # the encoder's term trains no q
        optimiser.step()
        assert all(torch.equal(a, b) for a, b in zip(q_before, strategy.module.q.parameters()))
    after = refitted_estimate(encoded)
    assert before > 0.5 and after < 0.4 * before


def test_conditional_bound_spares_speaker_information_that_the_emotion_carries() -> None:
    def emotion_only(rows: dict[str, Tensor], seed: int) -> Tensor:
        return features(rows, speaker=False, seed=seed)

    assert refitted_estimate(emotion_only, entangled=True, conditional=False) > 0.3
    assert refitted_estimate(emotion_only, entangled=True, conditional=True) < 0.1


@pytest.mark.parametrize("floor", [True, False])
def test_the_floor_rewards_nothing_below_zero(floor: bool) -> None:
    torch.manual_seed(0)
    batch = labels()
    z = features(batch)[:, -SMALL["emotion_dim"] :].clone()
    strategy = built(floor=floor)
    fit_q(strategy, z, batch)
    relabelled = {**batch, "speaker": (batch["speaker"] + 1) % NUM_SPEAKERS}  # z points at other speakers
    z.requires_grad_(True)
    club = strategy.loss_terms({"z_emotion": z}, relabelled)["club"]
    assert float(strategy.estimate(z, relabelled)) < -0.5
    if floor:
        assert float(club) == 0.0
        club.backward()
        assert torch.count_nonzero(z.grad) == 0
    else:
        assert float(club) < -0.5


def test_club_trains_end_to_end_beside_another_strategy_and_logs_its_terms() -> None:
    L.seed_everything(0)
    net = model()
    callbacks = [CLUBStrategy(weight=1.0), HSICStrategy(weight=1.0)]
    callbacks[0].setup(None, net, "fit")
    q_before = [p.detach().clone() for p in net.strategy_modules["club"].parameters()]
    fit = trainer(callbacks)
    fit.fit(net, datamodule=TinyAVData())
    metrics = fit.callback_metrics
    terms = ["club/q_nll", "club/club", "hsic/hsic"]
    assert {f"{split}/{t}" for split in ("train", "val") for t in [*terms, "club/estimate"]} <= set(metrics)
    for split in ("train", "val"):
        parts = ["emotion/ce", "speaker/ce", *terms]  # the logged estimate is no loss term
        assert metrics[f"{split}/loss"] == pytest.approx(sum(float(metrics[f"{split}/{p}"]) for p in parts), abs=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(q_before, net.strategy_modules["club"].parameters()))
    assert net.attached_strategies == {}

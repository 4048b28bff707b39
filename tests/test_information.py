"""Identity information in bits on constructed embeddings whose answers are known in closed form:
the emotion label's information about the speaker (the floor), H(S) for a z that names the speaker,
and a graded drop where accuracy cannot see one."""

from __future__ import annotations

import numpy as np
import pytest

from avdisentangle.evaluation.information import label_information, pointwise_information, prior_codelength_bits
from avdisentangle.evaluation.metrics import room_disentanglement_pct
from avdisentangle.evaluation.probe import fit_probe

SPEAKERS, EMOTIONS, TYPICAL = 8, 4, 0.7  # each speaker acts its own emotion 70% of the time, else any


def entangled(clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(speaker, emotion) drawn from the known joint: speakers uniform, p(e | s) = 0.7 [e = s mod 4] + 0.3 / 4."""
    rng = np.random.default_rng(seed)
    speaker = rng.integers(0, SPEAKERS, clips)
    emotion = np.where(rng.random(clips) < TYPICAL, speaker % EMOTIONS, rng.integers(0, EMOTIONS, clips))
    return speaker, emotion


def true_pointwise_bits(speaker: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    """log2 p(s | e) / p(s) under the generating joint, per clip: its mean is I(S; E) on these clips."""
    p_e_given_s = TYPICAL * (np.arange(EMOTIONS)[None, :] == np.arange(SPEAKERS)[:, None] % EMOTIONS) + (
        1 - TYPICAL
    ) / EMOTIONS
    p_e = p_e_given_s.mean(axis=0)
    return np.log2(p_e_given_s[speaker, emotion] / p_e[emotion])


def information(z_train, train_speaker, z_test, test_speaker, kind="mlp") -> tuple[float, float]:
    """(accuracy, bits) of one probe fitted on the train rows and scored on the test rows."""
    probe = fit_probe(z_train, train_speaker, kind)
    bits = pointwise_information(probe, z_test, test_speaker, train_speaker).mean()
    return float((probe.predict(z_test) == test_speaker).mean()), float(bits)


@pytest.fixture(scope="module")
def clips():
    return entangled(1200, seed=0), entangled(800, seed=1)


def test_emotion_one_hot_z_reads_the_floor_and_the_floor_is_the_label_information(clips):
    (train_speaker, train_emotion), (test_speaker, test_emotion) = clips
    known = true_pointwise_bits(test_speaker, test_emotion).mean()  # 0.75 on these clips (0.87 in the joint)
    floor = label_information(train_emotion, train_speaker, test_emotion, test_speaker).mean()
    assert floor == pytest.approx(known, abs=0.03)
    mixing = np.random.default_rng(2).normal(size=(EMOTIONS, 6))  # the emotion, coded otherwise than one-hot
    for kind in ("linear", "mlp"):
        z_train, z_test = np.eye(EMOTIONS)[train_emotion] @ mixing, np.eye(EMOTIONS)[test_emotion] @ mixing
        _, bits = information(z_train, train_speaker, z_test, test_speaker, kind)
        assert bits == pytest.approx(floor, abs=0.03), kind
        assert room_disentanglement_pct(np.log2(SPEAKERS), bits, floor) == pytest.approx(100, abs=2)


def test_speaker_one_hot_z_reads_the_whole_speaker_entropy(clips):
    (train_speaker, _), (test_speaker, _) = clips
    entropy = prior_codelength_bits(train_speaker, test_speaker)
    assert entropy == pytest.approx(np.log2(SPEAKERS), abs=0.01)  # 8 speakers, about equally frequent
    z_train, z_test = np.eye(SPEAKERS)[train_speaker], np.eye(SPEAKERS)[test_speaker]
    accuracy, bits = information(z_train, train_speaker, z_test, test_speaker)
    assert accuracy == 1.0 and bits == pytest.approx(entropy, abs=0.01)


def test_pulling_speaker_clusters_together_lowers_the_bits_while_accuracy_stays(clips):
    """z names a speaker, right 70% of the time. Wrong codes go either to one neighbour (A) or to any
    other speaker (B): B's speaker means are pulled to the centre, every argmax is the same, so the
    accuracy is the same (0.7) while I = 3 - h(0.7) drops by 0.3 log2(7) = 0.84 bits (2.12 -> 1.28 in the
    joint; compared here with the same sum over the test clips drawn)."""
    (train_speaker, _), (test_speaker, _) = clips

    def codes(speaker, spread, seed):
        rng = np.random.default_rng(seed)
        right, any_other = rng.random(len(speaker)) < TYPICAL, rng.integers(1, SPEAKERS, len(speaker))
        wrong = (speaker + (any_other if spread else 1)) % SPEAKERS
        return np.eye(SPEAKERS)[np.where(right, speaker, wrong)]

    def fisher_ratio(z, speaker):
        """Between-speaker over within-speaker scatter (traces): the separability of the speaker clusters."""
        means = np.stack([z[speaker == s].mean(0) for s in range(SPEAKERS)])
        return ((means[speaker] - z.mean(0)) ** 2).sum() / ((z - means[speaker]) ** 2).sum()

    readings = {}
    for spread in (False, True):
        z_train, z_test = codes(train_speaker, spread, 3), codes(test_speaker, spread, 4)
        accuracy, bits = information(z_train, train_speaker, z_test, test_speaker)
        readings[spread] = accuracy, bits, fisher_ratio(z_test, test_speaker)
    (acc_a, bits_a, fisher_a), (acc_b, bits_b, fisher_b) = readings[False], readings[True]
    assert fisher_b < 0.85 * fisher_a  # separability down: 1.08 -> 0.76 in expectation, 1.01 -> 0.82 here
    assert acc_a == acc_b == pytest.approx(TYPICAL, abs=0.04)  # the same codes are right: accuracy cannot tell
    # log2 p(s | code) / p(s) per test clip, whose mean is the known answer on these clips
    right = codes(test_speaker, True, 4).argmax(1) == test_speaker
    wrong_a, wrong_b = (1 - TYPICAL) * SPEAKERS, (1 - TYPICAL) / (SPEAKERS - 1) * SPEAKERS
    assert bits_a == pytest.approx(np.log2(np.where(right, TYPICAL * SPEAKERS, wrong_a)).mean(), abs=0.05)
    assert bits_b == pytest.approx(np.log2(np.where(right, TYPICAL * SPEAKERS, wrong_b)).mean(), abs=0.05)
    assert bits_a - bits_b == pytest.approx((1 - right.mean()) * np.log2(wrong_a / wrong_b), abs=0.05)


class Overconfident:
    """A probe that is certain of every guess and right 60% of the time (as an overfitted MLP is on held-out clips)."""

    classes_ = np.arange(SPEAKERS)

    def __init__(self, guesses: np.ndarray) -> None:
        self.guesses = guesses

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.eye(SPEAKERS)[self.guesses[rows.astype(int).ravel()]]


def test_calibration_turns_an_overconfident_probe_into_its_information(clips):
    """Uncalibrated, every wrong guess costs 40 bits and the 'information' is about -13 bits. Calibrated,
    a hard guess right with probability a is worth log2 K - h(a) - (1 - a) log2 (K - 1) = 0.91 bits."""
    (train_speaker, _), (test_speaker, _) = clips
    rng = np.random.default_rng(5)
    right = rng.random(len(test_speaker)) < 0.6
    guesses = np.where(right, test_speaker, (test_speaker + rng.integers(1, SPEAKERS, len(test_speaker))) % SPEAKERS)
    probe, rows = Overconfident(guesses), np.arange(len(test_speaker))[:, None]
    raw = np.log2(np.clip(probe.predict_proba(rows)[rows.ravel(), test_speaker], 1e-12, None)).mean() + 3
    assert raw < -10
    a = right.mean()
    known = np.log2(SPEAKERS) + a * np.log2(a) + (1 - a) * np.log2((1 - a) / (SPEAKERS - 1))
    assert pointwise_information(probe, rows, test_speaker, train_speaker).mean() == pytest.approx(known, abs=0.05)


def test_a_label_the_probe_never_saw_is_refused():
    probe = fit_probe(np.eye(3)[[0, 1, 2, 0, 1, 2]], np.array([0, 1, 2, 0, 1, 2]), "linear")
    with pytest.raises(ValueError, match=r"labels \[5\]"):
        pointwise_information(probe, np.eye(3)[[0]], np.array([5]), np.array([0, 1, 2]))

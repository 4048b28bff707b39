"""Identity information in bits: a graded reading of the same frozen probes whose accuracy the report gives.

Accuracy counts only a probe's top guess, so it saturates: on the benchmark (as issue 19 measured),
the MLP probe's speaker accuracy barely moved (0.728 -> 0.705) while the Fisher separability of the
speakers in z_emotion fell from 27 to 10. The information a probe reads does not saturate. It is the drop in
held-out codelength that knowing z buys (usable, or V-, information; Xu et al. 2020):

    I(z; S) = CE_prior(S) - CE_probe(S | z)   bits per held-out clip,

where CE_prior is the cross-entropy of the held-out labels under the TRAIN label frequencies (what a
probe that sees nothing predicts; H(S) on balanced splits) and CE_probe that of the probe fitted on
train embeddings. Both are means over held-out clips, so each clip contributes a pointwise term
(a bootstrap over clips gives the interval).

A probe fitted to near-zero train loss is overconfident on held-out clips: one confident mistake costs
tens of bits, and CE_probe can exceed CE_prior though most top guesses are right (negative
"information" from a probe that reads a lot). So its probabilities are temperature-scaled,
p ∝ p_probe^beta, with beta fitted by likelihood on held-out clips, cross-fitted: the scored clips are
split in two halves and each half is scored with the beta fitted on the other, so no clip is scored
by a temperature it helped choose. Scaling keeps every argmax, so accuracy is untouched, and beta = 0
(uniform) is always a candidate, so a calibrated probe that reads nothing scores about 0 (no lower
than CE_prior - log2 K, which is 0 on balanced labels). What is left below 0 is sampling noise; it is not
clipped, since clipping would bias means over seeds upward.

The floor is the information the true emotion label carries about the speaker, estimated the same
way (the same probe kind fitted on the one-hot emotion, same calibration, same clips): a perfectly
disentangled z_emotion still reads that much on corpora where speakers and emotions co-occur.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from avdisentangle.evaluation.probe import fit_probe

MAX_BETA = 20.0  # the search's bound: at 20, a 0.9 becomes 1 - 1e-19; only perfectly separated clips reach it
MIN_PROBABILITY = 1e-12  # log of an exact 0 from the probe (a class it rules out entirely)


def log_probabilities(probe, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The probe's natural-log probabilities of every class it knows, one row per clip; every label in
    `y` must be one of them (a probe cannot name a speaker it never saw: use held-out clips of its speakers)."""
    unknown = set(np.unique(y)) - set(probe.classes_)
    if unknown:
        raise ValueError(f"labels {sorted(int(label) for label in unknown)} were not in the probe's training rows")
    return np.log(np.clip(probe.predict_proba(x), MIN_PROBABILITY, None))


def fit_beta(log_p: np.ndarray, columns: np.ndarray) -> float:
    """The inverse temperature in [0, MAX_BETA] that maximises the likelihood of the true columns
    (the negative log-likelihood is convex in beta, so a bounded scalar search finds its minimum)."""

    def nll(beta: float) -> float:
        return -float(log_softmax(beta * log_p, axis=1)[np.arange(len(columns)), columns].mean())

    return float(minimize_scalar(nll, bounds=(0.0, MAX_BETA), method="bounded").x)


def pointwise_information(probe, x: np.ndarray, y: np.ndarray, train_y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per held-out clip, log2 p_calibrated(y | x) - log2 prior(y), with the prior the train label
    frequencies over the probe's classes and the calibration cross-fitted (module docstring): their
    mean is the information in bits."""
    log_p = log_probabilities(probe, x, y)
    classes = np.asarray(probe.classes_)
    columns = np.searchsorted(classes, y)
    prior = np.array([(train_y == c).mean() for c in classes])
    halves = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
    calibrated = np.empty(len(y))
    for scored in (halves, ~halves):
        beta = fit_beta(log_p[~scored], columns[~scored]) if (~scored).any() else 1.0
        calibrated[scored] = log_softmax(beta * log_p[scored], axis=1)[np.arange(scored.sum()), columns[scored]]
    return (calibrated - np.log(prior[columns])) / np.log(2.0)


def label_information(
    train_label: np.ndarray,
    train_y: np.ndarray,
    label: np.ndarray,
    y: np.ndarray,
    kind: str = "mlp",
    seed: int = 0,
) -> np.ndarray:
    """Pointwise information that a discrete label (the true emotion) carries about y (the speaker),
    read by a probe of `kind` fitted on the label's one-hot code: the floor of `pointwise_information`."""
    width = int(max(train_label.max(), label.max())) + 1
    probe = fit_probe(np.eye(width)[train_label], train_y, kind, seed)
    return pointwise_information(probe, np.eye(width)[label], y, train_y, seed)


def prior_codelength_bits(train_y: np.ndarray, y: np.ndarray) -> float:
    """CE_prior: bits per held-out label under the train label frequencies (the ceiling of the information)."""
    classes, counts = np.unique(train_y, return_counts=True)
    frequency = dict(zip(classes.tolist(), (counts / counts.sum()).tolist()))
    return float(-np.mean([np.log2(frequency[label]) for label in y.tolist()]))

"""Frozen-embedding probes: how much of a label can still be read from an embedding.

The model is frozen; embeddings of the train split fit a classifier, which is scored on held-out
clips of the same speakers (the closed-set test split). A linear probe reads what is linearly
available; a small MLP is the harder test, since an adversary-trained encoder often hides
identity only from a linear reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

PROBE_KINDS = ("linear", "mlp")


@dataclass
class Embeddings:
    """Both embeddings and both labels of a set of clips, row-aligned."""

    z_emotion: np.ndarray
    z_identity: np.ndarray
    emotion: np.ndarray
    speaker: np.ndarray
    index: np.ndarray


@torch.no_grad()
def extract_embeddings(model: torch.nn.Module, loader: DataLoader) -> Embeddings:
    """Run the frozen model over a loader (in eval mode, on the model's device)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ("z_emotion", "z_identity", "emotion", "speaker", "index")}
    for batch in loader:
        outputs = model({key: value.to(device) for key, value in batch.items()})
        for key in ("z_emotion", "z_identity"):
            parts[key].append(outputs[key].float().cpu().numpy())
        for key in ("emotion", "speaker", "index"):
            parts[key].append(batch[key].numpy())
    model.train(was_training)
    return Embeddings(**{key: np.concatenate(values) for key, values in parts.items()})


def make_probe(kind: str, seed: int):
    """A standardised classifier: logistic regression or a one-hidden-layer MLP."""
    if kind == "linear":
        classifier = LogisticRegression(max_iter=2000, C=1.0)
    elif kind == "mlp":
        classifier = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=1000, random_state=seed)
    else:
        raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
    return make_pipeline(StandardScaler(), classifier)


def probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, kind: str = "linear", seed: int = 0
) -> float:
    """Accuracy on the test rows of a probe fitted on the train rows."""
    probe = make_probe(kind, seed).fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())


def chance_levels(train_y: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    """Majority-class accuracy (predicting the train majority on test) and 1/K."""
    majority = np.bincount(train_y).argmax()
    return {"majority": float((test_y == majority).mean()), "uniform": 1.0 / len(np.unique(np.concatenate([train_y, test_y])))}

"""Frozen-embedding probes: how much of a label can still be read from an embedding.

The model is frozen; embeddings of the train split fit a classifier, which is scored on held-out
clips of the same speakers (the closed-set test split). A linear probe reads what is linearly
available; a small MLP is the harder test, since an adversary-trained encoder often hides
identity only from a linear reader.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader

from avdisentangle.errors import UserError
from avdisentangle.evaluation.metrics import emotion_label_floor

PROBE_KINDS = ("linear", "mlp")


@dataclass
class Embeddings:
    """Both embeddings, both labels and the emotion head's prediction of a set of clips, row-aligned."""

    z_emotion: np.ndarray
    z_identity: np.ndarray
    emotion: np.ndarray
    speaker: np.ndarray
    index: np.ndarray
    emotion_pred: np.ndarray


def embedding_rows(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """One batch's rows: what `predict_step` returned (the one definition of the embeddings) and the batch's labels."""
    return {
        "z_emotion": outputs["z_emotion"].numpy(),
        "z_identity": outputs["z_identity"].numpy(),
        "emotion_pred": outputs["emotion_probs"].argmax(dim=1).numpy(),
        "index": outputs["index"].numpy(),
        "emotion": batch["emotion"].cpu().numpy(),
        "speaker": batch["speaker"].cpu().numpy(),
    }


def stack_rows(rows: list[dict[str, np.ndarray]]) -> Embeddings:
    """Every batch's rows as one Embeddings, ordered by clip index."""
    merged = {key: np.concatenate([part[key] for part in rows]) for key in rows[0]}
    order = np.argsort(merged["index"], kind="stable")
    return Embeddings(**{key: values[order] for key, values in merged.items()})


class RowCollector(L.Callback):
    """Keeps each predicted batch's rows with its labels (which `predict_step` does not return)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, np.ndarray]] = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.rows.append(embedding_rows(outputs, batch))


def extract_embeddings(model: L.LightningModule, loader: DataLoader, accelerator: str = "cpu") -> Embeddings:
    """Embeddings of a frozen model over a loader, through Lightning's predict (a quiet, one-device Trainer)."""
    collector = RowCollector()
    starting = logging.getLogger(rank_zero.__name__)  # a Trainer's start-up lines (devices, a logger tip), each time
    level = starting.level
    starting.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            logger=False,
            callbacks=[collector],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    finally:
        starting.setLevel(level)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec")  # torch's pytree deprecation, inside Lightning
        trainer.predict(model, loader, return_predictions=False)
    return stack_rows(collector.rows)


@torch.no_grad()
def extract_embeddings_in_fit(model: L.LightningModule, loader: DataLoader) -> Embeddings:
    """The same rows by calling `predict_step` directly (eval mode, on the model's device), for callbacks
    inside a running fit: another Trainer's predict there would take over (and move) the model being fitted."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = [
        embedding_rows(model.predict_step({key: value.to(device) for key, value in batch.items()}, batch_idx), batch)
        for batch_idx, batch in enumerate(loader)
    ]
    model.train(was_training)
    return stack_rows(rows)


def make_probe(kind: str, seed: int):
    """A standardised classifier: logistic regression or a one-hidden-layer MLP."""
    if kind == "linear":
        classifier = LogisticRegression(max_iter=2000, C=1.0)
    elif kind == "mlp":
        # L-BFGS suits a few hundred rows: about 10x faster than Adam here, and it converges.
        classifier = MLPClassifier(
            hidden_layer_sizes=(128,), alpha=1e-2, solver="lbfgs", max_iter=300, random_state=seed
        )
    else:
        raise UserError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
    return make_pipeline(StandardScaler(), classifier)


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, kind: str = "linear", seed: int = 0):
    """A probe fitted on the train rows (a capped, unconverged probe is still a valid lower bound).

    Fitted on one BLAS thread: on these few hundred rows, threaded BLAS spends its time spinning
    (measured 12x slower for the MLP probe on 2 cores)."""
    if len(np.unique(train_y)) < 2:
        return ConstantProbe(train_y[0])
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_probe(kind, seed).fit(train_x, train_y)


class ConstantProbe:
    """What a classifier fitted on a single class predicts: that class, with certainty (sklearn refuses to fit one)."""

    def __init__(self, label) -> None:
        self.label = label
        self.classes_ = np.array([label])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.label)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


def probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    kind: str = "linear",
    seed: int = 0,
) -> float:
    """Accuracy on the test rows of a probe fitted on the train rows."""
    return float((fit_probe(train_x, train_y, kind, seed).predict(test_x) == test_y).mean())


def conditional_probe_correct(train: Embeddings, test: Embeddings, kind: str = "mlp", seed: int = 0) -> np.ndarray:
    """Per test clip, whether a speaker probe on z_emotion fitted within the clip's emotion class
    (train clips of that emotion only) names its speaker: leakage beyond what the emotion explains."""
    correct = np.zeros(len(test.speaker), dtype=bool)
    for emotion in np.unique(test.emotion):
        fit_rows, score_rows = train.emotion == emotion, test.emotion == emotion
        if not fit_rows.any():
            continue
        probe = fit_probe(train.z_emotion[fit_rows], train.speaker[fit_rows], kind, seed)
        correct[score_rows] = probe.predict(test.z_emotion[score_rows]) == test.speaker[score_rows]
    return correct


def chance_levels(train_y: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    """Majority-class accuracy (predicting the train majority on test) and 1/K."""
    majority = np.bincount(train_y).argmax()
    return {
        "majority": float((test_y == majority).mean()),
        "uniform": 1.0 / len(np.unique(np.concatenate([train_y, test_y]))),
    }


TARGETS = ("speaker", "emotion")
EMBEDDINGS = {"emotion": "z_emotion", "identity": "z_identity"}


def probe_all(train: Embeddings, test: Embeddings, seed: int = 0) -> dict[str, float]:
    """Every probe of the report: {speaker, emotion} from {z_emotion, z_identity}, linear and MLP,
    with chance levels, as flat keys like `probe_speaker_from_emotion_linear`, `chance_speaker`."""
    results: dict[str, float] = {}
    for target in TARGETS:
        train_y, test_y = getattr(train, target), getattr(test, target)
        for short, field in EMBEDDINGS.items():
            for kind in PROBE_KINDS:
                accuracy = probe_accuracy(getattr(train, field), train_y, getattr(test, field), test_y, kind, seed)
                results[f"probe_{target}_from_{short}_{kind}"] = accuracy
        chance = chance_levels(train_y, test_y)
        results[f"chance_{target}"] = chance["uniform"]
        results[f"chance_{target}_majority"] = chance["majority"]
    results["floor_speaker_from_emotion_label"] = emotion_label_floor(
        train.emotion, train.speaker, test.emotion, test.speaker
    )
    return results


def format_probe_table(results: dict[str, float]) -> str:
    """The probe results as an aligned text table with chance levels beside each row."""
    lines = [f"{'probe':<28}{'linear':>8}{'mlp':>8}   chance (1/K, majority)"]
    for target in TARGETS:
        for short in EMBEDDINGS:
            name = f"{target} from z_{short}"
            linear, mlp = (results[f"probe_{target}_from_{short}_{kind}"] for kind in PROBE_KINDS)
            chance = f"{results[f'chance_{target}']:.3f}, {results[f'chance_{target}_majority']:.3f}"
            lines.append(f"{name:<28}{linear:>8.3f}{mlp:>8.3f}   {chance}")
    floor = results["floor_speaker_from_emotion_label"]
    lines.append(
        f"floor: the true emotion label alone names the speaker at {floor:.3f}; z_emotion cannot be cleaner than that"
    )
    return "\n".join(lines)


def probe_checkpoint(ckpt_path: str, datamodule, seed: int = 0) -> dict[str, float]:
    """Load a checkpoint's model (its strategy modules are dropped), check it matches the data, probe it."""
    from avdisentangle.checkpoints import read_checkpoint
    from avdisentangle.models.from_checkpoint import module_from_checkpoint

    model = module_from_checkpoint(read_checkpoint(ckpt_path), ckpt_path).eval()
    datamodule.setup("test")
    expected = {"num_emotions": datamodule.num_emotions, "num_speakers": datamodule.num_speakers}
    found = {key: model.hparams[key] for key in expected}
    if found != expected:
        raise UserError(
            f"checkpoint {ckpt_path} was trained on other data ({found}) than given ({expected}): pass the fit config"
        )
    train = extract_embeddings(model, datamodule.loader("train"))
    test = extract_embeddings(model, datamodule.loader("test"))
    return probe_all(train, test, seed)

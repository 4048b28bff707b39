"""`LeakageProbe`: at the end of `fit`, how much speaker identity an MLP probe reads from z_emotion.

Logged beside the training metrics so that a sweep can optimise the trade-off directly:
- `leakage/speaker_from_emotion`: accuracy of an MLP speaker probe (the harder test: an adversary
  often hides identity only from a linear reader) fitted on frozen z_emotion of train clips and
  scored on held-out clips of the same speakers. A speaker probe cannot name a speaker it never
  saw, so under speaker-held-out splits (whose val speakers are not train speakers) it is fitted
  and scored on two per-speaker, emotion-stratified parts of the train split instead of train->val;
- `leakage/floor`: on the same clips, the speaker accuracy the true emotion label alone allows
  (`emotion_label_floor`): when speakers and emotions co-occur, a perfect z_emotion still reads it;
- `leakage/speaker_info_bits` and `leakage/floor_info_bits`: the same probe's reading as information in
  bits, and the information the true emotion label carries about the speaker, on the same clips
  (`evaluation/information.py`): accuracy saturates long before identity is gone, bits do not;
- `leakage/tradeoff` = `val/emotion/uar` - (`leakage/speaker_from_emotion` - `leakage/floor`)
  (higher is better): emotion performance minus the identity above what the emotion explains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import lightning.pytorch as L
import numpy as np

from avdisentangle.data.splits import within_speaker_holdout
from avdisentangle.evaluation.information import label_information, pointwise_information
from avdisentangle.evaluation.metrics import emotion_label_floor
from avdisentangle.evaluation.probe import Embeddings, extract_embeddings_in_fit, fit_probe

SPEAKER_FROM_EMOTION = "leakage/speaker_from_emotion"
FLOOR = "leakage/floor"
SPEAKER_INFO_BITS = "leakage/speaker_info_bits"
FLOOR_INFO_BITS = "leakage/floor_info_bits"
TRADEOFF = "leakage/tradeoff"
EMOTION_UAR = "val/emotion/uar"
PROBE_KIND = "mlp"
SCORE_FRACTION = 0.3  # of each train speaker's clips, when val holds other speakers


class Leakage(NamedTuple):
    """The probe's speaker accuracy, the emotion-label floor and 1/K on the same clips, the same two
    readings in bits, and which clips scored them ("val", or "held-out train clips")."""

    speaker_from_emotion: float
    floor: float
    chance: float
    scored_on: str
    speaker_info_bits: float
    floor_info_bits: float


def select_rows(embeddings: Embeddings, rows: np.ndarray) -> Embeddings:
    """The given rows of every field."""
    return Embeddings(**{name: values[rows] for name, values in vars(embeddings).items()})


def probe_sets(train: Embeddings, val: Embeddings, seed: int = 0) -> tuple[Embeddings, Embeddings, str]:
    """(fit clips, score clips, name of the score clips): train->val when every val speaker is a
    train speaker (closed set); otherwise a seeded, emotion-stratified holdout within each train speaker."""
    if set(np.unique(val.speaker)) <= set(np.unique(train.speaker)):
        return train, val, "val"
    held = within_speaker_holdout(train.speaker, train.emotion, SCORE_FRACTION, np.random.default_rng(seed))
    return select_rows(train, ~held), select_rows(train, held), "held-out train clips"


def speaker_leakage(train: Embeddings, val: Embeddings, seed: int = 0) -> Leakage:
    """The MLP speaker probe on z_emotion and the emotion-label floor, as accuracy and in bits, on the
    clips `probe_sets` picks."""
    fit, score, scored_on = probe_sets(train, val, seed)
    probe = fit_probe(fit.z_emotion, fit.speaker, PROBE_KIND, seed)
    return Leakage(
        speaker_from_emotion=float((probe.predict(score.z_emotion) == score.speaker).mean()),
        floor=emotion_label_floor(fit.emotion, fit.speaker, score.emotion, score.speaker),
        chance=1.0 / len(np.unique(fit.speaker)),
        scored_on=scored_on,
        speaker_info_bits=float(pointwise_information(probe, score.z_emotion, score.speaker, fit.speaker, seed).mean()),
        floor_info_bits=float(
            label_information(fit.emotion, fit.speaker, score.emotion, score.speaker, PROBE_KIND, seed).mean()
        ),
    )


def tradeoff(emotion_uar: float, speaker_from_emotion: float, floor: float) -> float:
    """Emotion UAR minus the speaker accuracy above the emotion-label floor (higher is better)."""
    return emotion_uar - (speaker_from_emotion - floor)


class LeakageProbe(L.Callback):
    """Probes frozen z_emotion for the speaker after fit (see the module docstring) and logs the trade-off.

    Args:
        enabled: turn the probe off (it costs one pass over train and val, and a few seconds).
        summary_file: also write every final metric to this JSON file (sweeps read it).
    """

    def __init__(self, enabled: bool = True, summary_file: str | None = None):
        self.enabled = enabled
        self.summary_file = summary_file

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.datamodule is None or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        train = extract_embeddings_in_fit(pl_module, datamodule.loader("train"))
        val = extract_embeddings_in_fit(pl_module, datamodule.loader("val"))
        leakage = speaker_leakage(train, val)
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
        logged = {
            SPEAKER_FROM_EMOTION: leakage.speaker_from_emotion,
            FLOOR: leakage.floor,
            SPEAKER_INFO_BITS: leakage.speaker_info_bits,
            FLOOR_INFO_BITS: leakage.floor_info_bits,
            TRADEOFF: tradeoff(metrics.get(EMOTION_UAR, 0.0), leakage.speaker_from_emotion, leakage.floor),
        }
        metrics.update(logged)
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=trainer.global_step)
            logger.save()
        print(
            f"{SPEAKER_FROM_EMOTION} = {leakage.speaker_from_emotion:.3f} ({PROBE_KIND} probe on {leakage.scored_on}; "
            f"chance {leakage.chance:.3f}, floor {leakage.floor:.3f}), {TRADEOFF} = {logged[TRADEOFF]:.3f}; "
            f"{SPEAKER_INFO_BITS} = {leakage.speaker_info_bits:.2f} (floor {leakage.floor_info_bits:.2f})"
        )
        if self.summary_file:
            path = Path(self.summary_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics, indent=2, sort_keys=True))

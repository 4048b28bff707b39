"""`LeakageProbe`: at the end of `fit`, how much speaker identity a linear probe reads from z_emotion.

Logged beside the training metrics so that a sweep can optimise the trade-off directly:
`leakage/speaker_from_emotion` (probe accuracy on validation clips of the training speakers) and
`leakage/tradeoff` = `val/emotion/uar` - `leakage/speaker_from_emotion` (higher is better).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as L

from avdisentangle.evaluation.probe import extract_embeddings, probe_accuracy

SPEAKER_FROM_EMOTION = "leakage/speaker_from_emotion"
TRADEOFF = "leakage/tradeoff"


class LeakageProbe(L.Callback):
    """Fits a linear speaker probe on frozen train-split z_emotion after fit, scores it on val.

    Args:
        enabled: turn the probe off (it costs one pass over train and val, and a second or two).
        summary_file: also write every final metric to this JSON file (sweeps read it).
    """

    def __init__(self, enabled: bool = True, summary_file: str | None = None):
        self.enabled = enabled
        self.summary_file = summary_file

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.datamodule is None or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        train = extract_embeddings(pl_module, datamodule.loader("train"))
        val = extract_embeddings(pl_module, datamodule.loader("val"))
        leakage = probe_accuracy(train.z_emotion, train.speaker, val.z_emotion, val.speaker, "linear")
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
        metrics[SPEAKER_FROM_EMOTION] = leakage
        metrics[TRADEOFF] = metrics.get("val/emotion/uar", 0.0) - leakage
        for logger in trainer.loggers:
            logger.log_metrics({SPEAKER_FROM_EMOTION: leakage, TRADEOFF: metrics[TRADEOFF]}, step=trainer.global_step)
            logger.save()
        print(f"{SPEAKER_FROM_EMOTION} = {leakage:.3f} (chance {1 / datamodule.num_speakers:.3f}), {TRADEOFF} = {metrics[TRADEOFF]:.3f}")
        if self.summary_file:
            path = Path(self.summary_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metrics, indent=2, sort_keys=True))

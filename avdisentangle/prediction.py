"""Writes what `predict` produces: emotion probabilities per clip and both embeddings."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """After `predict`, writes `<output_dir>/predictions.csv` (clip id, predicted emotion, one
    probability column per emotion) and `<output_dir>/embeddings.npz` (clip_id, emotion_probs,
    z_emotion, z_identity). Under DDP each process writes its own `-rank<N>` files."""

    def __init__(self, output_dir: str = "predictions"):
        super().__init__(write_interval="epoch")
        self.output_dir = Path(output_dir)

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices) -> None:
        if predictions and isinstance(predictions[0], list):  # several predict dataloaders: use the first
            predictions = predictions[0]
        if not predictions:
            return
        merged = {key: torch.cat([p[key] for p in predictions]).numpy() for key in predictions[0]}
        clips = trainer.predict_dataloaders.dataset.cache.clips
        clip_ids = np.array([clips[row]["clip_id"] for row in merged["index"].tolist()])
        names = list(pl_module.emotion_label_names)
        suffix = f"-rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        np.savez(
            self.output_dir / f"embeddings{suffix}.npz",
            clip_id=clip_ids,
            emotion_names=np.array(names),
            emotion_probs=merged["emotion_probs"],
            z_emotion=merged["z_emotion"],
            z_identity=merged["z_identity"],
        )
        with (self.output_dir / f"predictions{suffix}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["clip_id", "emotion", *[f"p_{name}" for name in names]])
            for clip_id, probs in zip(clip_ids, merged["emotion_probs"]):
                writer.writerow([clip_id, names[int(probs.argmax())], *[f"{p:.4f}" for p in probs]])
        print(f"wrote {len(clip_ids)} predictions to {self.output_dir}/predictions{suffix}.csv and embeddings{suffix}.npz")

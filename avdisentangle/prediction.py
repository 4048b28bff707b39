"""Writes what `predict` produces: emotion probabilities per clip and both embeddings."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from avdisentangle.data.cache import atomic_write
from avdisentangle.errors import ExpectedFailure

OUTPUT_PATTERNS = ("predictions*.csv", "embeddings*.npz")


class PredictionWriter(BasePredictionWriter):
    """After `predict`, writes `<output_dir>/predictions.csv` (clip id, predicted emotion, one
    probability column per emotion) and `<output_dir>/embeddings.npz` (clip_id, emotion_probs,
    z_emotion, z_identity). Under DDP each process writes its own `-rank<N>` files.

    Outputs of an earlier run in the same folder are removed when predict starts, and new ones
    appear whole (written to a temporary name, then renamed): what is there is always this run's.
    """

    def __init__(self, output_dir: str = "predictions"):
        super().__init__(write_interval="epoch")
        self.output_dir = Path(output_dir)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Remove an earlier run's outputs before the inputs are read, so a run that fails on
        its inputs cannot leave old predictions looking like its own."""
        if stage != "predict":
            return
        if trainer.is_global_zero:
            for pattern in OUTPUT_PATTERNS:
                for stale in self.output_dir.glob(pattern):
                    stale.unlink()
        trainer.strategy.barrier()

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices) -> None:
        if predictions and isinstance(predictions[0], list):  # several predict dataloaders: use the first
            predictions = predictions[0]
        if not predictions:
            raise ExpectedFailure(
                "no clip was predicted, so nothing was written (outputs of earlier runs were removed)"
            )
        merged = {key: torch.cat([p[key] for p in predictions]).numpy() for key in predictions[0]}
        clips = trainer.predict_dataloaders.dataset.table.clips
        clip_ids = np.array([clips[row]["clip_id"] for row in merged["index"].tolist()])
        names = list(pl_module.emotion_label_names)
        suffix = f"-rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        arrays = {
            "clip_id": clip_ids,
            "emotion_names": np.array(names),
            "emotion_probs": merged["emotion_probs"],
            "z_emotion": merged["z_emotion"],
            "z_identity": merged["z_identity"],
        }
        atomic_write(self.output_dir / f"embeddings{suffix}.npz", lambda handle: np.savez(handle, **arrays))
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["clip_id", "emotion", *[f"p_{name}" for name in names]])
        for clip_id, probs in zip(clip_ids, merged["emotion_probs"]):
            writer.writerow([clip_id, names[int(probs.argmax())], *[f"{p:.4f}" for p in probs]])
        atomic_write(
            self.output_dir / f"predictions{suffix}.csv", lambda handle: handle.write(table.getvalue().encode())
        )
        print(
            f"wrote {len(clip_ids)} predictions to {self.output_dir}/predictions{suffix}.csv and embeddings{suffix}.npz"
        )

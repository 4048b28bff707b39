"""`WandbRecords`: what Lightning's `WandbLogger` leaves out of a W&B run, offline included.

- After `test`: the emotion confusion matrix, as W&B's own confusion-matrix chart (from the counts)
  and as the report's row-normalised picture.
- After `fit`: the best and the last checkpoint, as versions of one `model` artifact (aliases "best"
  and "latest"). Lightning's `log_model` uploads only online; offline, `log_artifact` records the
  artifact in the run, with a copy of the file in W&B's staging folder ($WANDB_DATA_DIR; `AutoWandbLogger`
  puts it beside the offline runs, `logs/wandb/staging`), from where `wandb sync` uploads it. The copy
  is written whole or not at all, as the checkpoints are (`checkpoint_io.py`).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import lightning.pytorch as L
import numpy as np
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from avdisentangle.checkpoint_io import write_atomically

CONFUSION_CHART = "test/emotion/confusion_matrix"
CONFUSION_IMAGE = "test/emotion/confusion_matrix_image"
CONFUSION_PRESET = "wandb/confusion_matrix/v1"
STEP = "trainer/global_step"  # the x-axis WandbLogger gives every metric


class WandbRecords(L.Callback):
    """Logs the test confusion matrix and the fit's checkpoints to every W&B logger of the trainer.

    Args:
        confusion_matrix: after `test`, log the emotion confusion matrix (chart and picture).
        checkpoints: after `fit`, log the best and the last checkpoint as a `model` artifact (offline,
            each waits as a copy in W&B's staging folder until `wandb sync`).
    """

    def __init__(self, confusion_matrix: bool = True, checkpoints: bool = True):
        self.confusion_matrix = confusion_matrix
        self.checkpoints = checkpoints

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not on_test_epoch_end: Lightning runs the callbacks' epoch-end hooks before the module's,
        # which is where the matrix is computed.
        matrix, loggers = getattr(pl_module, "test_confusion_matrix", None), wandb_loggers(trainer)
        if not self.confusion_matrix or matrix is None or not loggers:
            return
        from avdisentangle.evaluation.plots import plot_confusion_matrices

        names = [str(name) for name in pl_module.emotion_label_names]
        with tempfile.TemporaryDirectory() as folder:  # W&B copies the picture into the run when it logs it
            picture = plot_confusion_matrices({"test": matrix}, names, Path(folder) / "confusion.png")
            for logger in loggers:
                logger.experiment.log(confusion_records(matrix, names, picture) | {STEP: trainer.global_step})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.checkpoints:
            return
        import wandb

        files = checkpoint_files(trainer.checkpoint_callbacks)
        for logger in wandb_loggers(trainer):
            if logger._log_model:  # Lightning uploads this run's checkpoints itself (online only)
                continue
            run = logger.experiment
            for path, aliases in files.items():
                artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata={"original_filename": path.name})
                # "model.ckpt": the name Lightning's own upload gives it. Staged here, not by W&B's plain copy.
                artifact.add_file(str(staged_copy(path, run.id)), name="model.ckpt", policy="immutable")
                run.log_artifact(artifact, aliases=aliases)


def staged_copy(path: Path, run_id: str) -> Path:
    """A copy of a checkpoint in W&B's staging folder, written atomically (`write_atomically`), for `wandb sync` to
    upload: the checkpoint itself changes when a run resumes. W&B's core deletes it once uploaded, as its own."""
    from wandb.sdk.artifacts.staging import get_staging_dir

    staged = Path(get_staging_dir()) / f"model-{run_id}-{secrets.token_hex(4)}-{path.name}"
    with path.open("rb") as source:
        write_atomically(staged, lambda handle: shutil.copyfileobj(source, handle))
    return staged


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers, on the process that owns their runs."""
    if not trainer.is_global_zero:
        return []
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def confusion_records(matrix: np.ndarray, names: list[str], picture: Path) -> dict:
    """W&B's confusion-matrix chart of the counts (rows = true class) and the picture of the recall."""
    import wandb

    counts = np.asarray(matrix)
    rows = [[names[i], names[j], float(counts[i, j])] for i in range(len(names)) for j in range(len(names))]
    table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=rows)
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    chart = wandb.plot_table(CONFUSION_PRESET, table, fields, {"title": "Emotion confusion matrix (test)"})
    image = wandb.Image(str(picture), caption="Emotion recall per true class (test, row-normalised)")
    return {CONFUSION_CHART: chart, CONFUSION_IMAGE: image}


def checkpoint_files(callbacks: list[ModelCheckpoint]) -> dict[Path, list[str]]:
    """{checkpoint file: aliases}, "best" (a monitored callback's best) before "latest" (the newest: the
    file of a callback without a monitor, or `save_last`'s): W&B gives "latest" to the last version logged."""
    files: dict[Path, list[str]] = {}
    for callback in callbacks:
        if callback.monitor and callback.best_model_path:
            files.setdefault(Path(callback.best_model_path), []).append("best")
    for callback in callbacks:
        newest = callback.last_model_path or ("" if callback.monitor else callback.best_model_path)
        if newest:
            files.setdefault(Path(newest), []).append("latest")
    return {path: aliases for path, aliases in files.items() if path.is_file()}  # a resumed run's may be gone

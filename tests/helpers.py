"""Small models, trainers and in-memory clips, and runs of the real command line, that several test files share."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader

from avdisentangle.models import MultitaskAVModule
from tests.conftest import TINY_FEATURES

NUM_EMOTIONS, NUM_SPEAKERS = 3, 4
SMALL = {"hidden_dim": 32, "emotion_dim": 8, "identity_dim": 8}


def model(num_emotions: int = NUM_EMOTIONS, num_speakers: int = NUM_SPEAKERS, **hparams) -> MultitaskAVModule:
    """A small multitask module (SMALL sizes unless `hparams` say otherwise)."""
    return MultitaskAVModule(num_emotions, num_speakers, **{**SMALL, **hparams})


def trainer(callbacks: Sequence[L.Callback] = (), **overrides) -> L.Trainer:
    """A quiet CPU trainer for 2 epochs: no logger, checkpoints, progress bar or summary unless `overrides` say so."""
    settings = dict(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(callbacks=list(callbacks), **{**settings, **overrides})


def make_samples(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Clips of the batch contract whose emotion lifts mel bands and whose speaker lights face rows."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        emotion, speaker = i % NUM_EMOTIONS, int(torch.randint(0, NUM_SPEAKERS, (), generator=g))
        audio = torch.randn(1, 12, 24, generator=g) * 10 - 40
        audio[0, emotion * 4 : (emotion + 1) * 4] += 30
        video = torch.randint(0, 128, (3, 1, 16, 16), generator=g, dtype=torch.uint8)
        video[:, :, speaker * 4 : (speaker + 1) * 4] = 255
        labels = {"emotion": torch.tensor(emotion), "speaker": torch.tensor(speaker), "index": torch.tensor(i)}
        samples.append({"audio": audio, "video": video, **labels})
    return samples


def batch_of(n: int = 12) -> dict[str, torch.Tensor]:
    """One collated batch of `make_samples(n)`."""
    return next(iter(DataLoader(make_samples(n), batch_size=n)))


class TinyAVData(L.LightningDataModule):
    """In-memory clips; the same set serves every stage so runs are cheap and deterministic to compare."""

    def __init__(self, n: int = 36, batch_size: int = 12) -> None:
        super().__init__()
        self.samples = make_samples(n)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.samples, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.samples, batch_size=self.batch_size)


REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


# Every setting in which TINY_FEATURES and base.yaml's features differ, so a command-line run extracts TINY_FEATURES.
TINY_FEATURE_NAMES = ("window_s", "n_mels", "hop_ms", "num_frames", "face_size")
FEATURE_ARGS = [f"--data.features.{name}={getattr(TINY_FEATURES, name)}" for name in TINY_FEATURE_NAMES]


def prepare_command(corpus: Path, *extra: str) -> list[str]:
    """`python -m avdisentangle prepare` of a CREMA-D-layout corpus with the tiny feature settings."""
    data = ["--data.corpus=cremad", f"--data.root={corpus}", "--data.progress=false", *FEATURE_ARGS]
    return [sys.executable, "-m", "avdisentangle", "prepare", *data, *extra]


def fit_args(corpus: Path, workdir: Path, *extra: str, strategy: str = "none", command: str = "fit") -> list[str]:
    """A run of the tiny corpus (CREMA-D layout) with the repo's own base and strategy configs."""
    configs = ["--config", str(REPO / "experiments/configs/base.yaml")]
    configs += ["--config", str(REPO / f"experiments/configs/strategy/{strategy}.yaml")]
    data = ["--data.corpus=cremad", f"--data.root={corpus}", f"--data.cache_dir={workdir / 'cache'}"]
    data += ["--data.prepare_workers=0", "--data.batch_size=8", *FEATURE_ARGS]
    logs = [f"--trainer.default_root_dir={workdir}", f"--checkpoint.dirpath={workdir / 'checkpoints'}"]
    logs += ["--trainer.logger.init_args.save_dir", str(workdir / "logs"), "--trainer.enable_progress_bar=false"]
    return [sys.executable, "-m", "avdisentangle", command, *configs, *data, *logs, *extra]


def run(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, **kwargs)


def metrics_rows(workdir: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((workdir / "logs").rglob("metrics.csv")):
        with path.open() as handle:
            rows += list(csv.DictReader(handle))
    return rows

"""One run of the report: fit a strategy through the Lightning CLI, test its best checkpoint, probe it.

A run is `closed_set` (every speaker in train, val and test: the identity probes need known
speakers), `unseen` (one fold of speakers held out: emotion on people the model never saw) or
`protocol` (one fold of the corpus's published speaker-independent protocol, for comparing with
papers: emotion WA, UAR and macro-F1 and the test confusion matrix). Runs
are independent, so the report may execute them in worker processes side by side; everything a
run returns is plain data (a table row and the arrays the plots and paired statistics need).
"""

from __future__ import annotations

import csv
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avdisentangle.evaluation.information import label_information, pointwise_information, prior_codelength_bits
from avdisentangle.evaluation.metrics import (
    bootstrap_interval,
    emotion_label_floor,
    unweighted_average_recall,
)
from avdisentangle.evaluation.probe import (
    Embeddings,
    conditional_probe_correct,
    extract_embeddings,
    fit_probe,
    probe_accuracy,
)
from avdisentangle.lightning_cli import run_lightning


@dataclass(frozen=True)
class RunSpec:
    """What to train: a strategy config at a strength (None: the file's own), one seed, one split."""

    strategy: str
    strategy_config: str
    seed: int
    split: str = "closed_set"
    strength: float | None = None
    fold: int = 0
    num_folds: int = 1

    @property
    def name(self) -> str:
        strength = "" if self.strength is None else f"-w{self.strength:g}"
        place = f"seed{self.seed}" if self.split == "closed_set" else f"fold{self.fold}"
        return f"{self.split}/{self.strategy}{strength}-{place}"

    def fit_args(self) -> list[str]:
        args = [f"--config={self.strategy_config}", f"--seed_everything={self.seed}"]
        if self.strength is not None:
            args.append(f"--trainer.callbacks.weight={self.strength}")
        if self.split == "unseen":
            args += ["--data.split=speaker_folds", f"--data.num_folds={self.num_folds}", f"--data.fold={self.fold}"]
        if self.split == "protocol":
            args += ["--data.split=protocol_folds", f"--data.fold={self.fold}"]
        return args


@dataclass
class RunOutcome:
    """One trained and probed run: its table row and what the plots and paired statistics need."""

    spec: RunSpec
    row: dict
    test: Embeddings
    confusion: np.ndarray
    emotion_names: list[str]
    speaker_names: list[str]
    history: list[dict] = field(default_factory=list)  # the run's metrics.csv rows, for the training curves


def fit_command(spec: RunSpec, configs: list[str], run_dir: Path, extra: list[str]) -> list[str]:
    """The `fit` arguments of one run: quiet, a CSV log and checkpoints in its own folder."""
    return [
        "fit",
        *[f"--config={config}" for config in configs],
        *spec.fit_args(),
        f"--checkpoint.dirpath={run_dir / 'checkpoints'}",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={run_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--leakage_probe.enabled=false",
        "--data.progress=false",
        *extra,
    ]


def fit_and_evaluate(
    spec: RunSpec, configs: list[str], run_dir: Path, extra: list[str], threads: int | None = None
) -> RunOutcome:
    """Fit one run, test its best checkpoint (validation emotion UAR) and measure it."""
    if threads:
        torch.set_num_threads(threads)
    # Many runs: keep the console to the report's own lines.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|multiple `ModelCheckpoint`).*")
    started = time.perf_counter()
    cli = run_lightning(fit_command(spec, configs, run_dir, extra))
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    metrics = trainer.test(model, datamodule, ckpt_path="best", verbose=False)[0]
    device = trainer.strategy.root_device.type  # embed where the run trained ("cuda" or "cpu")
    test = extract_embeddings(model, datamodule.loader("test"), device)
    row = {
        "strategy": spec.strategy,
        "strength": spec.strength if spec.strength is not None else float("nan"),
        "split": spec.split,
        "seed": spec.seed,
        "fold": spec.fold if spec.split != "closed_set" else "",
        "emotion_f1": metrics["test/emotion/f1"],
        "emotion_wa": metrics["test/emotion/wa"],
    }
    uar = bootstrap_interval(unweighted_average_recall, test.emotion, test.emotion_pred, seed=spec.seed)
    if spec.split == "unseen":
        row.update(
            unseen_speaker_emotion_uar=uar.mean,
            unseen_speaker_emotion_uar_low=uar.low,
            unseen_speaker_emotion_uar_high=uar.high,
        )
    else:
        row.update(emotion_uar=uar.mean, emotion_uar_low=uar.low, emotion_uar_high=uar.high)
    if spec.split == "closed_set":
        row["speaker_acc"] = metrics["test/speaker/wa"]
        train = extract_embeddings(model, datamodule.loader("train"), device)
        val = extract_embeddings(model, datamodule.loader("val"), device)
        row.update(identity_probes(train, val, test, spec.seed))
    row["seconds"] = round(time.perf_counter() - started, 1)
    with (Path(trainer.logger.log_dir) / "metrics.csv").open(newline="") as handle:
        history = list(csv.DictReader(handle))
    return RunOutcome(
        spec,
        row,
        test,
        model.test_confusion_matrix,
        list(datamodule.emotion_names),
        list(datamodule.speaker_names),
        history,
    )


def identity_probes(train: Embeddings, val: Embeddings, test: Embeddings, seed: int) -> dict[str, float]:
    """Probes fitted on frozen train embeddings: speaker from z_emotion (MLP, the headline, on val and
    test with a bootstrap interval, as accuracy and as information in bits; linear; within each
    emotion), the floors it is judged against, and what else each embedding carries."""
    mlp = fit_probe(train.z_emotion, train.speaker, "mlp", seed)
    leak = bootstrap_interval(lambda correct: correct.mean(), mlp.predict(test.z_emotion) == test.speaker, seed=seed)
    information = pointwise_information(mlp, test.z_emotion, test.speaker, train.speaker, seed)
    bits = bootstrap_interval(np.mean, information, seed=seed)
    emotion_probe = fit_probe(train.z_identity, train.emotion, "linear", seed)
    num_speakers = len(np.unique(np.concatenate([train.speaker, test.speaker])))
    return {
        "val_emotion_uar": unweighted_average_recall(val.emotion, val.emotion_pred),
        "probe_speaker_from_emotion_mlp": leak.mean,
        "probe_speaker_from_emotion_mlp_low": leak.low,
        "probe_speaker_from_emotion_mlp_high": leak.high,
        "val_probe_speaker_from_emotion_mlp": float((mlp.predict(val.z_emotion) == val.speaker).mean()),
        "probe_speaker_from_emotion_linear": probe_accuracy(
            train.z_emotion, train.speaker, test.z_emotion, test.speaker, "linear", seed
        ),
        "speaker_info_bits": bits.mean,
        "speaker_info_bits_low": bits.low,
        "speaker_info_bits_high": bits.high,
        "floor_info_bits": float(
            label_information(train.emotion, train.speaker, test.emotion, test.speaker, "mlp", seed).mean()
        ),
        "speaker_entropy_bits": prior_codelength_bits(train.speaker, test.speaker),
        "conditional_speaker_from_emotion_mlp": float(conditional_probe_correct(train, test, "mlp", seed).mean()),
        "floor_speaker_from_emotion_label": emotion_label_floor(
            train.emotion, train.speaker, test.emotion, test.speaker
        ),
        "val_floor_speaker_from_emotion_label": emotion_label_floor(
            train.emotion, train.speaker, val.emotion, val.speaker
        ),
        "chance_speaker": 1.0 / num_speakers,
        "probe_emotion_from_emotion_linear": probe_accuracy(
            train.z_emotion, train.emotion, test.z_emotion, test.emotion, "linear", seed
        ),
        "probe_speaker_from_identity_linear": probe_accuracy(
            train.z_identity, train.speaker, test.z_identity, test.speaker, "linear", seed
        ),
        "probe_emotion_from_identity_linear": float((emotion_probe.predict(test.z_identity) == test.emotion).mean()),
        "emotion_info_from_identity_bits": float(
            pointwise_information(emotion_probe, test.z_identity, test.emotion, train.emotion, seed).mean()
        ),
    }

"""Six-actor generated corpora in both real layouts: enough actors for the published protocols
(CREMA-D 5 folds, RAVDESS 6), few and short clips so that a run of each fold takes seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus
from tests.conftest import write_ravdess_copy
from tests.helpers import FEATURE_ARGS, REPO

SIX_ACTORS = SyntheticConfig(num_speakers=6, clips_per_speaker=6, min_duration_s=1.0, max_duration_s=1.2)
#: RAVDESS emotion codes CREMA-D has no counterpart for; each actor gets one clip of each (a copy of a neutral one).
UNSHARED = {"02": "calm", "08": "surprise"}
TINY_MODEL = ["--model.hidden_dim=16", "--model.emotion_dim=8", "--model.identity_dim=8"]


def six_actor_layouts(base: Path) -> tuple[Path, Path]:
    """(CREMA-D-layout root, RAVDESS-layout root) under `base`, written once: the RAVDESS copy has the
    same six speakers as actors 01-06, plus one calm and one surprise clip per actor."""
    cremad = generate_corpus(base / "cremad", SIX_ACTORS, progress=False)
    ravdess, done = base / "ravdess", base / "ravdess.done"
    if not done.exists():
        shutil.rmtree(ravdess, ignore_errors=True)
        write_ravdess_copy(cremad, ravdess, speakers=SIX_ACTORS.num_speakers)
        for neutral in sorted(ravdess.glob("Actor_*/0[23]-01-01-*")):
            for code in UNSHARED:
                fields = neutral.name.split("-")
                shutil.copy(neutral, neutral.with_name("-".join([fields[0], fields[1], code, *fields[3:]])))
        done.touch()
    return cremad, ravdess


def data_args(corpus: str, root: Path, cache: Path) -> list[str]:
    """A generated corpus with the tiny features, a tiny model and one epoch."""
    data = [f"--data.corpus={corpus}", f"--data.root={root}", f"--data.cache_dir={cache}", "--data.prepare_workers=0"]
    return [*data, "--data.batch_size=8", "--data.progress=false", *FEATURE_ARGS, *TINY_MODEL, "--trainer.max_epochs=1"]


def run_args(command: str, corpus: str, root: Path, cache: Path, work: Path, *extra: str) -> list[str]:
    """A quiet Lightning command on the base config: CSV log and checkpoints under `work`."""
    return [
        command,
        f"--config={REPO / 'experiments/configs/base.yaml'}",
        *data_args(corpus, root, cache),
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={work}",
        f"--checkpoint.dirpath={work / 'checkpoints'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--leakage_probe.enabled=false",
        *extra,
    ]

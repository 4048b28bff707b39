"""A corpus seen through a checkpoint's label space, for testing a model on a corpus it was not trained on.

`--data.label_space_from=CKPT` makes the DataModule label every clip with the checkpoint's emotion
ids, through the explicit map of `label_maps.py`: the model is scored on emotion only, in the classes
it knows. Clips of emotions the checkpoint has no class for are excluded, counted and reported,
never dropped silently. The speakers of two corpora are different people, so every clip's speaker is
-100 (cross-entropy's ignore_index) and the model skips speaker metrics. Every clip of a mapped
emotion is a test clip (the model never saw this corpus): `test`, `validate` and `predict` run on
them; there is nothing to train on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avdisentangle.checkpoints import read_checkpoint
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.label_maps import emotion_map
from avdisentangle.errors import UserError

UNKNOWN_SPEAKER = -100  # F.cross_entropy's default ignore_index


def feature_differences(trained: FeatureConfig | dict | None, features: FeatureConfig) -> str:
    """'name=this run's (checkpoint: its)' for every feature setting that differs; '' when none does."""
    trained = asdict(trained) if isinstance(trained, FeatureConfig) else dict(trained or {})
    trained = {**asdict(FeatureConfig()), **trained}  # a checkpoint older than a setting used its default
    return ", ".join(
        f"{key}={value} (checkpoint: {trained.get(key)})"
        for key, value in asdict(features).items()
        if trained.get(key) != value
    )


@dataclass(frozen=True)
class CheckpointLabelSpace:
    """The labels a checkpoint predicts: its emotion names, speaker count, and the corpus it learnt them on."""

    path: str
    corpus: str
    emotion_names: list[str]
    num_speakers: int

    @classmethod
    def load(cls, path: str, features: FeatureConfig) -> CheckpointLabelSpace:
        """Read the label space from a checkpoint written by `fit`; its features must be `features`
        (a model sees only the features it was trained on)."""
        try:
            checkpoint = read_checkpoint(path, mmap=True)
        except UserError as error:
            raise UserError(f"data.label_space_from: {error}") from error
        model = checkpoint["hyper_parameters"]
        data = checkpoint.get("datamodule_hyper_parameters", {})
        if not model.get("emotion_label_names") or "corpus" not in data:
            raise UserError(f"data.label_space_from: {path} holds no emotion names or corpus (not written by fit)")
        differ = feature_differences(data.get("features"), features)
        if differ:
            raise UserError(
                f"data.label_space_from: this run extracts features the checkpoint was not trained on: {differ}; "
                "pass the checkpoint's --data.features.* (e.g. its data config)"
            )
        return cls(path, data["corpus"], list(model["emotion_label_names"]), int(model["num_speakers"]))

    @property
    def speaker_names(self) -> list[str]:
        """Placeholders: the model's speaker head keeps its size, but its speakers are not this corpus's."""
        return [f"train speaker {index}" for index in range(self.num_speakers)]

    def emotion_ids(self, corpus: str, emotions: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """Each clip's class in the checkpoint (-1: excluded) and {emotion: clips excluded}; prints both."""
        mapping = emotion_map(corpus, self.corpus, self.emotion_names)
        ids = np.array([self.emotion_names.index(mapping[e]) if e in mapping else -1 for e in emotions], np.int64)
        names, counts = np.unique(emotions[ids < 0], return_counts=True)
        excluded = {str(name): int(count) for name, count in zip(names, counts)}
        pairs = ", ".join(f"{name}->{mapping[name]}" for name in sorted(mapping))
        dropped = ", ".join(f"{count} {name}" for name, count in excluded.items()) or "none"
        print(
            f"cross-corpus: {corpus} emotions in the label space of {self.path} (trained on {self.corpus}): {pairs}; "
            f"{int((ids >= 0).sum())} clips mapped; excluded (no class in the checkpoint): {dropped}"
        )
        if not (ids >= 0).any():
            raise UserError(f"cross-corpus: no {corpus} clip has an emotion the checkpoint knows")
        return ids, excluded

    @staticmethod
    def splits(emotion_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Every mapped clip is held out; nothing is trained on."""
        mapped = np.flatnonzero(emotion_ids >= 0)
        return {"train": mapped[:0], "val": mapped, "test": mapped, "all": mapped}

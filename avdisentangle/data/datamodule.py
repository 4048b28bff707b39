"""`AVDataModule`: a corpus on disk becomes cached features (`preparation.py`), closed-set splits and batches.

Label maps, class counts and class weights come from the data and are linked into the model by
the CLI, so nobody types `num_speakers` by hand. Training epochs read only the memory-mapped cache.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from avdisentangle.data.augment import AudioAugment
from avdisentangle.data.cache import FeatureCache
from avdisentangle.data.corpora import CORPORA
from avdisentangle.data.cross_corpus import UNKNOWN_SPEAKER, CheckpointLabelSpace
from avdisentangle.data.dataset import CachedClips, evaluation_sampler, keep_batch
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.loose_clips import loose_clips
from avdisentangle.data.preparation import CorpusPreparation
from avdisentangle.data.protocols import corpus_folds, protocol_for
from avdisentangle.data.records import CorpusError
from avdisentangle.data.samplers import check_batch_shape, training_batches
from avdisentangle.data.speaker_norm import SpeakerNormaliser
from avdisentangle.data.splits import SPLIT_KINDS, SPLIT_NAMES, check_folds, make_splits
from avdisentangle.data.ssl_features import SSLConfig
from avdisentangle.data.synthetic import SyntheticConfig
from avdisentangle.errors import UserError

PREDICT_SPLITS = (*SPLIT_NAMES, "all")

# Checkpoints store the DataModule's hyperparameters, these dataclasses among them; allow them
# in torch.load's safe (weights-only) unpickler so checkpoints reload without trusting pickle.
torch.serialization.add_safe_globals([FeatureConfig, SSLConfig, SyntheticConfig, AudioAugment])


class AVDataModule(CorpusPreparation, L.LightningDataModule):
    """Aligned audio-visual clips of one corpus, as cached features split by a seed.

    Args:
        corpus: which reader: synthetic (built in, generated on first use), cremad, ravdess, manifest.
        root: the corpus folder (or manifest CSV); for synthetic, defaults to a folder under cache_dir.
        cache_dir: where feature caches (and the generated synthetic corpus) live.
        features: audio and video feature settings, and which modalities to read (`features.modalities`:
            audio,video, audio or video; linked into the model's); any change builds a new cache.
            `features.audio`: logmel (default), egemaps or ssl (with `features.ssl.path`, a local model folder).
        synthetic: the built-in corpus' size and speaker-emotion entanglement.
        augment: training-time crops and masks of the log-mel (`augment.py`); off by default.
        speaker_norm: standardise each speaker's log-mel per mel bin, from all of that speaker's clips
            (`speaker_norm.py`; no labels needed, so an unseen speaker's own clips give theirs).
        vocal_channels: RAVDESS only: speech and/or song.
        split: closed_set (every speaker in train/val/test), speaker_independent (whole speakers
            held out), speaker_folds (k-fold over speakers) or protocol_folds (the published folds).
        val_fraction, test_fraction: share of clips (or of speakers, speaker-independent and, for
            val only, speaker_folds, whose test share is 1/num_folds).
        num_folds: speaker_folds only: how many folds the speakers are dealt into (2 to the number
            of speakers; checked when splitting).
        fold: speaker_folds only: which fold (0 to num_folds - 1) is the test set; running every
            fold with one seed tests every speaker exactly once.
        seed: fixes the split (for speaker_folds, the dealing of speakers into folds).
        batch_size: clips per batch.
        speakers_per_batch: training batches of this many speakers x batch_size / speakers_per_batch clips each
            (`samplers.py`; one process only); None (default): shuffled clips.
        prepare_workers: processes that write the synthetic corpus and extract features in `prepare`.
        num_workers: DataLoader workers, as in Lightning's hints; 0 is usually fastest since a batch
            is one slice of memory-mapped arrays.
        predict_split: which clips of the corpus `predict` runs on.
        predict_paths: files or folders to predict on instead (unlabelled clips: a video with a
            same-named .wav beside it, or a video alone with its own audio track; for audio-only
            features, audio files alone).
        progress: show the preprocessing progress bar.
        label_space_from: a checkpoint to test on this corpus in its emotion classes (cross-corpus;
            data/cross_corpus.py): unshared emotions are excluded and counted; not for fit.
    """

    def __init__(
        self,
        corpus: str = "synthetic",
        root: str | None = None,
        cache_dir: str = "data/cache",
        features: FeatureConfig = FeatureConfig(),
        synthetic: SyntheticConfig = SyntheticConfig(),
        augment: AudioAugment = AudioAugment(),
        speaker_norm: bool = False,
        vocal_channels: tuple[str, ...] = ("speech",),
        split: str = "closed_set",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        num_folds: int = 4,
        fold: int = 0,
        seed: int = 0,
        batch_size: int = 32,
        speakers_per_batch: int | None = None,
        prepare_workers: int = 2,
        num_workers: int = 0,
        predict_split: str = "test",
        predict_paths: list[str] | None = None,
        progress: bool = True,
        label_space_from: str | None = None,
    ):
        super().__init__()
        if corpus not in CORPORA:
            raise UserError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
        if split not in SPLIT_KINDS:
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KINDS)}")
        check_folds(protocol_for(corpus).num_folds if split == "protocol_folds" else num_folds, fold)
        for name, value, least in (
            ("batch_size", batch_size, 1),
            ("prepare_workers", prepare_workers, 0),
            ("num_workers", num_workers, 0),
        ):
            if value < least:
                raise UserError(f"{name} must be at least {least}, got {value}")
        check_batch_shape(batch_size, speakers_per_batch)
        if features.audio != "logmel" and (speaker_norm or augment.active):
            raise UserError(f"speaker_norm and augment act on the log-mel; features.audio is {features.audio}")
        if predict_split not in PREDICT_SPLITS:
            raise UserError(f"unknown predict_split {predict_split!r}; choose one of {', '.join(PREDICT_SPLITS)}")
        self.save_hyperparameters()
        self.corpus = corpus
        self.root = root
        self.cache_root = Path(cache_dir)
        self.features = features
        self.synthetic = synthetic
        self.augment = augment
        self.speaker_norm = speaker_norm
        self.normaliser: SpeakerNormaliser | None = None
        self.vocal_channels = tuple(vocal_channels)
        self.split = split
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.num_folds = num_folds
        self.fold = fold
        self.seed = seed
        self.batch_size = batch_size
        self.speakers_per_batch = speakers_per_batch
        self.prepare_workers = prepare_workers
        self.num_workers = num_workers
        self.predict_split = predict_split
        self.predict_paths = predict_paths
        self.progress = progress
        self.label_space_from = label_space_from
        self.cache: FeatureCache | None = None
        self.prepared_cache: Path | None = None  # set by `from_cache`
        self.splits: dict[str, np.ndarray] = {}

    # ---- setup assigns state from the cache that `prepare_data` (preparation.py) wrote -----------
    def setup(self, stage: str | None = None) -> None:
        """Open the prepared cache and derive label ids and splits (once)."""
        if stage == "fit" and self.label_space_from is not None:
            raise UserError("data.label_space_from tests a checkpoint on another corpus (test, validate), not fit")
        if self.cache is not None:
            return
        cache = FeatureCache.open(self.cache_location())
        if not cache.clips:
            raise CorpusError(f"every clip of the {self.corpus} corpus was refused; see {cache.path / 'refused.csv'}")
        self.emotion_names, self.speaker_names = cache.emotion_names, cache.speaker_names
        if self.speaker_norm and cache.audio is not None:
            self.normaliser = SpeakerNormaliser.fit(cache.audio, cache.column("speaker"))
        self.emotion_ids = np.searchsorted(self.emotion_names, cache.column("emotion")).astype(np.int64)
        self.speaker_ids = np.searchsorted(self.speaker_names, cache.column("speaker")).astype(np.int64)
        if self.label_space_from is not None:
            space = CheckpointLabelSpace.load(self.label_space_from, self.features)
            self.emotion_names, self.speaker_names = space.emotion_names, space.speaker_names
            self.emotion_ids, self.excluded_emotions = space.emotion_ids(self.corpus, cache.column("emotion"))
            self.speaker_ids = np.full(len(cache.clips), UNKNOWN_SPEAKER, dtype=np.int64)
            self.splits, self.cache = space.splits(self.emotion_ids), cache
            return
        self.splits = make_splits(
            cache.column("speaker"),
            cache.column("emotion"),
            self.split,
            self.val_fraction,
            self.test_fraction,
            self.seed,
            num_folds=self.num_folds,
            fold=self.fold,
            fold_of=corpus_folds(self.corpus, cache) if self.split == "protocol_folds" else None,
        )
        self.splits["all"] = np.arange(len(cache.clips))
        self.cache = cache

    def ready(self) -> AVDataModule:
        """Prepare and set up, once: what sizes a model from the data before Trainer.fit runs."""
        if self.cache is None:
            self.prepare_data()
            self.setup()
        return self

    def require_setup(self) -> None:
        if self.cache is None:
            raise RuntimeError("AVDataModule is not set up: call prepare_data() and setup(), or ready(), first")

    # ---- what the model is linked to ---------------------------------------------------------
    @property
    def num_emotions(self) -> int:
        self.require_setup()
        return len(self.emotion_names)

    @property
    def num_speakers(self) -> int:
        self.require_setup()
        return len(self.speaker_names)

    @property
    def video_channels(self) -> int:
        return self.features.video_channels

    @property
    def audio_shape(self) -> tuple[int, ...] | None:
        """One clip's cached audio array (log-mel, eGeMAPS or ssl summaries); None when the run has no audio."""
        self.require_setup()
        return None if self.cache.audio is None else tuple(self.cache.audio.shape[1:])

    @property
    def speakers_known(self) -> bool:  # not in a cross-corpus test, whose speaker labels are -100
        return self.label_space_from is None

    @property
    def emotion_class_weights(self) -> list[float] | None:
        """Inverse emotion frequency on the train split, scaled to mean 1 (for weighted CE); None without one."""
        self.require_setup()
        counts = np.bincount(self.emotion_ids[self.splits["train"]], minlength=len(self.emotion_names)).astype(float)
        weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        return (weights * len(weights) / weights.sum()).round(6).tolist() if counts.any() else None

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """Augment training batches on their device; every other batch is the cached features as they are."""
        if self.augment.active and "audio" in batch and self.trainer is not None and self.trainer.training:
            batch = {**batch, "audio": self.augment(batch["audio"], self.features.hop_ms)}
        return batch

    # ---- loaders -----------------------------------------------------------------------------
    def dataset(self, split: str) -> CachedClips:
        self.require_setup()
        return CachedClips(self.cache, self.splits[split], self.emotion_ids, self.speaker_ids, self.normaliser)

    def loader(self, split: str, training: bool = False) -> DataLoader:
        """A split's batches: in order, or, for `training`, drawn as `samplers.training_batches` says."""
        dataset = self.dataset(split)
        if training:
            world_size = 1 if self.trainer is None else self.trainer.world_size
            speakers = self.speaker_ids[dataset.indices]
            batching = training_batches(speakers, self.batch_size, self.speakers_per_batch, self.seed, world_size)
        else:
            batching = {"batch_size": self.batch_size, "sampler": evaluation_sampler(dataset)}
        return DataLoader(
            dataset,
            **batching,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def predict_dataloader(self) -> DataLoader:
        if not self.predict_paths:
            return self.loader(self.predict_split)
        dataset = loose_clips(self.predict_paths, self.features, self.normaliser)
        return DataLoader(dataset, batch_size=self.batch_size, collate_fn=keep_batch)

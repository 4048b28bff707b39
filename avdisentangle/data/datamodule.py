"""`AVDataModule`: a corpus on disk becomes cached features, closed-set splits and batches.

Label maps, class counts and class weights come from the data and are linked into the model by
the CLI, so nobody types `num_speakers` by hand. Training epochs read only the memory-mapped cache.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import warnings
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from avdisentangle.data.cache import (
    FeatureCache,
    PrepareSummary,
    build_cache,
    cache_dir_for,
    clip_row,
    damage,
    init_worker,
    is_complete,
    process_chunk,
    read_summary,
)
from avdisentangle.data.corpora import CORPORA, read_corpus
from avdisentangle.data.corpora.loose import read_loose_files
from avdisentangle.data.corpora.manifest import locate_manifest
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.records import CorpusError, require_root
from avdisentangle.data.splits import SPLIT_KINDS, SPLIT_NAMES, check_folds, make_splits
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus
from avdisentangle.errors import UserError

PREDICT_SPLITS = (*SPLIT_NAMES, "all")

# Checkpoints store the DataModule's hyperparameters, these dataclasses among them; allow them
# in torch.load's safe (weights-only) unpickler so checkpoints reload without trusting pickle.
torch.serialization.add_safe_globals([FeatureConfig, SyntheticConfig])


class CachedClips(Dataset):
    """Rows of the feature cache as training samples; `__getitems__` gathers a whole batch at once."""

    def __init__(self, cache: FeatureCache, indices: np.ndarray, emotion_ids: np.ndarray, speaker_ids: np.ndarray):
        self.cache = cache
        self.indices = indices
        self.emotion_ids = emotion_ids
        self.speaker_ids = speaker_ids

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([position]).items()}

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        rows = self.indices[np.asarray(positions)]
        return {
            "audio": torch.from_numpy(self.cache.audio[rows].astype(np.float32)).unsqueeze(1),
            "video": torch.from_numpy(np.ascontiguousarray(self.cache.video[rows])),
            "emotion": torch.from_numpy(self.emotion_ids[rows]),
            "speaker": torch.from_numpy(self.speaker_ids[rows]),
            "index": torch.from_numpy(rows.astype(np.int64)),
        }


def keep_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Collate for datasets that already return whole batches."""
    return batch


def evaluation_sampler(dataset: Dataset) -> UnrepeatedDistributedSampler | None:
    """Under DDP, split evaluation clips across processes without padding.

    Lightning's default DistributedSampler repeats clips to even out the processes, and the
    repeats would be counted twice by the (synced) metrics; the training split keeps that default.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        return UnrepeatedDistributedSampler(dataset, shuffle=False)
    return None


class AVDataModule(L.LightningDataModule):
    """Aligned audio-visual clips of one corpus, as cached features split by a seed.

    Args:
        corpus: which reader: synthetic (built in, generated on first use), cremad, ravdess, manifest.
        root: the corpus folder (or manifest CSV); for synthetic, defaults to a folder under cache_dir.
        cache_dir: where feature caches (and the generated synthetic corpus) live.
        features: audio and video feature settings; any change builds a new cache.
        synthetic: the built-in corpus' size and speaker-emotion entanglement.
        vocal_channels: RAVDESS only: speech and/or song.
        split: closed_set (every speaker in train/val/test), speaker_independent (whole speakers
            held out) or speaker_folds (k-fold cross-validation over speakers).
        val_fraction, test_fraction: share of clips (or of speakers, speaker-independent and, for
            val only, speaker_folds, whose test share is 1/num_folds).
        num_folds: speaker_folds only: how many folds the speakers are dealt into (2 to the number
            of speakers; checked when splitting).
        fold: speaker_folds only: which fold (0 to num_folds - 1) is the test set; running every
            fold with one seed tests every speaker exactly once.
        seed: fixes the split (for speaker_folds, the dealing of speakers into folds).
        batch_size: clips per batch.
        num_workers: processes that write the synthetic corpus and extract features in `prepare`.
        loader_workers: DataLoader workers; 0 is usually fastest since a batch is one slice of
            memory-mapped arrays.
        predict_split: which clips of the corpus `predict` runs on.
        predict_paths: files or folders to predict on instead (unlabelled clips: a video with a
            same-named .wav beside it, or a video alone with its own audio track).
        progress: show the preprocessing progress bar.
    """

    def __init__(
        self,
        corpus: str = "synthetic",
        root: str | None = None,
        cache_dir: str = "data/cache",
        features: FeatureConfig = FeatureConfig(),
        synthetic: SyntheticConfig = SyntheticConfig(),
        vocal_channels: tuple[str, ...] = ("speech",),
        split: str = "closed_set",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        num_folds: int = 4,
        fold: int = 0,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 2,
        loader_workers: int = 0,
        predict_split: str = "test",
        predict_paths: list[str] | None = None,
        progress: bool = True,
    ):
        super().__init__()
        if corpus not in CORPORA:
            raise UserError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
        if split not in SPLIT_KINDS:
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KINDS)}")
        check_folds(num_folds, fold)
        for name, value, least in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0), ("loader_workers", loader_workers, 0)):
            if value < least:
                raise UserError(f"{name} must be at least {least}, got {value}")
        if predict_split not in PREDICT_SPLITS:
            raise UserError(f"unknown predict_split {predict_split!r}; choose one of {', '.join(PREDICT_SPLITS)}")
        self.save_hyperparameters()
        self.corpus = corpus
        self.root = root
        self.cache_root = Path(cache_dir)
        self.features = features
        self.synthetic = synthetic
        self.vocal_channels = tuple(vocal_channels)
        self.split = split
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.num_folds = num_folds
        self.fold = fold
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.loader_workers = loader_workers
        self.predict_split = predict_split
        self.predict_paths = predict_paths
        self.progress = progress
        self.cache: FeatureCache | None = None
        self.splits: dict[str, np.ndarray] = {}

    # ---- preparation -------------------------------------------------------------------------
    def corpus_root(self) -> Path:
        """The folder to read; the synthetic corpus is generated there on first use."""
        if self.corpus == "synthetic" and self.root is None:
            root = self.cache_root / "synthetic" / self.synthetic.fingerprint()
            return generate_corpus(root, self.synthetic, progress=self.progress, workers=self.num_workers)
        if self.corpus == "synthetic":
            return generate_corpus(Path(self.root), self.synthetic, progress=self.progress, workers=self.num_workers)
        if self.corpus == "manifest":
            return locate_manifest(self.root)  # the CSV itself, or the manifest.csv in a folder
        return require_root(self.root, self.corpus)

    def prepare_data(self) -> PrepareSummary:
        """Build the feature cache unless a finished one exists (printing what was kept and
        refused when it builds); returns the summary.

        Holds a lock on the cache folder: under torchrun every process instantiates the
        DataModule (the CLI links label counts from it), and only one may generate and cache.
        """
        self.cache_root.mkdir(parents=True, exist_ok=True)
        with (self.cache_root / ".prepare.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._prepare_locked()

    def _prepare_locked(self) -> PrepareSummary:
        root = self.corpus_root()
        options = {"vocal_channels": self.vocal_channels} if self.corpus == "ravdess" else {}
        listing = read_corpus(self.corpus, root, **options)
        self.cache_path = cache_dir_for(self.cache_root, self.corpus, root, listing, self.features)
        if is_complete(self.cache_path):
            problem = damage(self.cache_path)
            if not problem:
                return read_summary(self.cache_path)
            warnings.warn(f"feature cache {self.cache_path} is damaged ({problem}): rebuilding it", stacklevel=2)
            shutil.rmtree(self.cache_path)
        summary = build_cache(
            listing, self.features, self.cache_path, corpus=self.corpus, num_workers=self.num_workers, progress=self.progress
        )
        print("\n".join(summary.lines()))
        return summary

    def load(self) -> FeatureCache:
        """Open the cache (preparing it if needed), derive label maps and splits; idempotent."""
        if self.cache is not None:
            return self.cache
        if not getattr(self, "cache_path", None) or not is_complete(self.cache_path):
            self.prepare_data()
        cache = FeatureCache.open(self.cache_path)
        if not cache.clips:
            raise CorpusError(f"every clip of the {self.corpus} corpus was refused; see {cache.path / 'refused.csv'}")
        speakers, emotions = cache.column("speaker"), cache.column("emotion")
        self.emotion_names = sorted(set(emotions.tolist()))
        self.speaker_names = sorted(set(speakers.tolist()))
        self.emotion_ids = np.searchsorted(self.emotion_names, emotions).astype(np.int64)
        self.speaker_ids = np.searchsorted(self.speaker_names, speakers).astype(np.int64)
        self.splits = make_splits(
            speakers, emotions, self.split, self.val_fraction, self.test_fraction, self.seed, num_folds=self.num_folds, fold=self.fold
        )
        self.splits["all"] = np.arange(len(cache.clips))
        self.cache = cache
        return cache

    def setup(self, stage: str | None = None) -> None:
        self.load()

    # ---- what the model is linked to ---------------------------------------------------------
    @property
    def num_emotions(self) -> int:
        self.load()
        return len(self.emotion_names)

    @property
    def num_speakers(self) -> int:
        self.load()
        return len(self.speaker_names)

    @property
    def video_channels(self) -> int:
        return self.features.video_channels

    @property
    def emotion_class_weights(self) -> list[float]:
        """Inverse emotion frequency on the train split, scaled to mean 1 (for weighted CE)."""
        self.load()
        counts = np.bincount(self.emotion_ids[self.splits["train"]], minlength=len(self.emotion_names)).astype(float)
        weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        return (weights * len(weights) / weights.sum()).round(6).tolist()

    # ---- loaders -----------------------------------------------------------------------------
    def dataset(self, split: str) -> CachedClips:
        self.load()
        return CachedClips(self.cache, self.splits[split], self.emotion_ids, self.speaker_ids)

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = self.dataset(split)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=None if shuffle else evaluation_sampler(dataset),
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=keep_batch,
            num_workers=self.loader_workers,
            persistent_workers=self.loader_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def predict_dataloader(self) -> DataLoader:
        if not self.predict_paths:
            return self.loader(self.predict_split)
        dataset = self.loose_clips(self.predict_paths)
        return DataLoader(dataset, batch_size=self.batch_size, collate_fn=keep_batch)

    def loose_clips(self, paths: list[str]) -> CachedClips:
        """Features of unlabelled files, extracted in memory (labels are -1); refusals are printed,
        and a CorpusError says so when none is left to predict on."""
        listing = read_loose_files(paths)
        init_worker()
        result = process_chunk(listing.clips, self.features)
        refused = [(r.item, r.reason) for r in listing.refused] + json.loads(result["refused"])
        for item, reason in refused:
            print(f"refused {item}: {reason}", file=sys.stderr)
        kept = [listing.clips[position] for position in result["kept"].tolist()]
        if not kept:
            raise CorpusError(f"nothing to predict: all {len(refused)} inputs were refused (reasons above)")
        clips = FeatureCache(path=None, audio=result["audio"], video=result["video"], clips=[clip_row(c, f) for c, f in zip(kept, result["face_found"])])
        unknown = np.full(len(kept), -1, dtype=np.int64)
        return CachedClips(clips, np.arange(len(kept)), unknown, unknown)

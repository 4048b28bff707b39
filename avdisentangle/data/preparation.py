"""The DataModule's first stage: a corpus on disk (or generated) becomes its feature cache.

Kept apart from splitting and batching (`datamodule.py`), which only read the finished cache.
`CorpusPreparation` is mixed into `AVDataModule` (as Lightning mixes its hooks into it) and reads
the options listed on the class, which the DataModule's constructor sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

from filelock import FileLock

from avdisentangle.data.cache import FeatureCache, PrepareSummary, cache_dir_for, prepare_cache, read_summary
from avdisentangle.data.corpora import read_corpus
from avdisentangle.data.corpora.manifest import locate_manifest
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.records import CorpusListing, require_root
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus


class CorpusPreparation:
    """Locate (or generate) the corpus, list its clips, name its cache, and build that cache once."""

    corpus: str
    root: str | None
    cache_root: Path
    features: FeatureConfig
    synthetic: SyntheticConfig
    vocal_channels: tuple[str, ...]
    prepare_workers: int
    progress: bool
    prepared_cache: Path | None  # set by `from_cache`

    def corpus_root(self) -> Path:
        """The folder (or manifest CSV) to read; the synthetic corpus is generated there on first use."""
        if self.corpus == "synthetic":
            default_root = self.cache_root / "synthetic" / self.synthetic.fingerprint()
            root = default_root if self.root is None else Path(self.root)
            return generate_corpus(root, self.synthetic, progress=self.progress, workers=self.prepare_workers)
        if self.corpus == "manifest":
            return locate_manifest(self.root)  # the CSV itself, or the manifest.csv in a folder
        return require_root(self.root, self.corpus)

    def listing(self) -> tuple[Path, CorpusListing]:
        """The corpus root and its clips (the root found, or generated, once)."""
        root = self.corpus_root()
        options = {"vocal_channels": self.vocal_channels} if self.corpus == "ravdess" else {}
        return root, read_corpus(self.corpus, root, modalities=self.features.modality_names, **options)

    def cache_location(self, listed: tuple[Path, CorpusListing] | None = None) -> Path:
        """The cache folder of this corpus content and feature config."""
        if self.prepared_cache is not None:
            return self.prepared_cache
        root, listing = listed or self.listing()
        return cache_dir_for(self.cache_root, self.corpus, root, listing, self.features)

    def prepare_data(self) -> PrepareSummary:
        """Generate the synthetic corpus if needed and build the feature cache unless a whole one exists
        (printing what was kept and refused); assigns no state. Under a lock (`filelock`, on every platform):
        under torchrun every process readies the DataModule, and only one may generate and cache."""
        if self.prepared_cache is not None:
            return read_summary(FeatureCache.open(self.prepared_cache).path)
        self.cache_root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.cache_root / ".prepare.lock"):
            listed = self.listing()
            summary = prepare_cache(
                listed[1],
                self.features,
                self.cache_location(listed),
                corpus=self.corpus,
                num_workers=self.prepare_workers,
                progress=self.progress,
            )
        if not summary.from_existing_cache:
            print("\n".join(summary.lines()))
        return summary

    @classmethod
    def from_cache(cls, path: str | Path, **options) -> Self:
        """A DataModule over a finished cache folder alone (its corpus need not be on this machine)."""
        meta = json.loads((Path(path) / "meta.json").read_text())
        datamodule = cls(corpus=meta["corpus"], features=FeatureConfig(**meta["features"]), **options)
        datamodule.prepared_cache = Path(path)
        return datamodule

"""Unlabelled files to predict on, as a dataset: listed by stem, extracted in memory, never cached.

`predict --data.predict_paths=[...]` reads files that are in no corpus: they are decoded in this
process (a few clips), each refusal is printed with its reason, and the speaker normalisation of
the training corpus, if on, treats the given clips as one speaker.
"""

from __future__ import annotations

import sys

import numpy as np

from avdisentangle.data.corpora.loose import read_loose_files
from avdisentangle.data.dataset import CachedClips
from avdisentangle.data.extraction import extract_in_memory
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.records import CorpusError
from avdisentangle.data.speaker_norm import SpeakerNormaliser


def loose_clips(paths: list[str], features: FeatureConfig, normaliser: SpeakerNormaliser | None) -> CachedClips:
    """Features of unlabelled files (labels are -1); a CorpusError when none is left to predict on."""
    table, refused = extract_in_memory(read_loose_files(paths, features.modality_names), features)
    for refusal in refused:
        print(f"refused {refusal.item}: {refusal.reason}", file=sys.stderr)
    if not table.clips:
        raise CorpusError(f"nothing to predict: all {len(refused)} inputs were refused (reasons above)")
    unknown = np.full(len(table.clips), -1, dtype=np.int64)
    normaliser = normaliser and normaliser.for_clips(table.audio, unknown)  # one group: one speaker
    return CachedClips(table, np.arange(len(table.clips)), unknown, unknown, normaliser)

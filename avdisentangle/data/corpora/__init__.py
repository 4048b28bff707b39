"""Corpus readers by name, so a config picks a layout with one string.

Each reader is `read_<layout>(root, modalities, **options) -> CorpusListing`, listing the files of
the modalities a run reads; the built-in synthetic corpus is written in the CREMA-D layout, so
"synthetic" reuses that reader.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

from avdisentangle.data.corpora.cremad import read_cremad
from avdisentangle.data.corpora.manifest import read_manifest
from avdisentangle.data.corpora.ravdess import read_ravdess
from avdisentangle.data.modalities import MODALITIES
from avdisentangle.data.records import CorpusError, CorpusListing
from avdisentangle.errors import UserError

READERS: dict[str, Callable[..., CorpusListing]] = {
    "synthetic": read_cremad,
    "cremad": read_cremad,
    "ravdess": read_ravdess,
    "manifest": read_manifest,
}
CORPORA = tuple(READERS)


def _options(reader: Callable[..., CorpusListing]) -> list[str]:
    """The keyword options a reader takes besides its root and the modalities, which every reader takes."""
    return [name for name in inspect.signature(reader).parameters if name not in ("root", "modalities")]


def read_corpus(
    name: str, root: str | Path | None, modalities: Sequence[str] = MODALITIES, **options: object
) -> CorpusListing:
    """List the corpus `name` under `root` for a run of `modalities`, passing only options that its reader takes."""
    reader = READERS.get(name)
    if reader is None:
        raise CorpusError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    accepted = _options(reader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"only {', '.join(accepted)}" if accepted else "no options"
        owners = {option: [other for other, r in READERS.items() if option in _options(r)] for option in unknown}
        hints = "".join(f"; {option} is for {', '.join(names)}" for option, names in owners.items() if names)
        raise UserError(f"corpus {name!r} takes {takes}, not {', '.join(unknown)}{hints}")
    return reader(root, modalities=modalities, **options)


__all__ = ["CORPORA", "READERS", "read_corpus", "read_cremad", "read_manifest", "read_ravdess"]

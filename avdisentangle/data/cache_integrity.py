"""Is a finished feature cache whole? Its files are checked against each other on every open.

A cache edited or cut short (rows of clips.csv deleted or added, an array truncated by a full disk
or a half copy) would otherwise pair features with the wrong labels, or fail with a raw mmap error
that names no file. The check reads headers, sizes and the clip table; the eGeMAPS and ssl arrays,
which come from other libraries' code, are also read once to check every value is finite (about
0.3 s for a CREMA-D-sized ssl cache of pooled statistics, from the page cache).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from avdisentangle.data.clip_errors import describe_error
from avdisentangle.data.extraction import array_layout
from avdisentangle.data.features import FeatureConfig
from avdisentangle.errors import ExpectedFailure


class CacheDamaged(ExpectedFailure):
    """A finished cache whose files disagree with each other (edited, truncated or half-copied)."""


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def npy_problem(path: Path, shape: tuple[int, ...], dtype: type) -> str | None:
    """Why a .npy file does not hold an array of `shape` and `dtype` in full, from its header and size alone."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            found, _, found_dtype = read_header(handle)
            data_start = handle.tell()
    except (OSError, ValueError) as error:
        return f"{path.name} is unreadable ({describe_error(error)})"
    if tuple(found) != tuple(shape):
        return f"{path.name} holds an array of shape {tuple(found)}, meta.json records {tuple(shape)}"
    if found_dtype != np.dtype(dtype):
        return f"{path.name} holds {found_dtype} values, this feature kind is {np.dtype(dtype)}"
    expected = data_start + int(np.prod(shape)) * found_dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        return f"{path.name} is truncated: {size} bytes, its header declares {expected}"
    return None


def damage(cache_dir: Path, clip_rows: int | None = None) -> str | None:
    """What is wrong with a finished cache, naming the damaged file, or None when `meta.json`,
    `clips.csv` and the arrays of its modalities (`audio.npy`, `video.npy`) agree on the clip count
    and the arrays have their recorded shapes. Reads headers, sizes and the clip table only: fast enough for every open.
    `clip_rows`: the row count of clips.csv when the caller has read it already."""
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        kept, config = int(meta["kept"]), FeatureConfig(**meta["features"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"meta.json is unreadable or from another version ({describe_error(error)})"
    for name in config.modality_names:  # a cache holds the arrays of its modalities only
        dtype, shape = array_layout(name, config) if name == "video" else audio_layout(meta, config)
        if problem := npy_problem(cache_dir / f"{name}.npy", (kept, *shape), dtype):
            return problem
    if "audio" in config.modality_names and config.audio != "logmel":
        if problem := non_finite(cache_dir / "audio.npy"):
            return problem
    try:
        rows = len(read_rows(cache_dir / "clips.csv")) if clip_rows is None else clip_rows
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        return f"clips.csv is unreadable ({describe_error(error)})"
    if rows != kept:
        return f"clips.csv has {rows} rows, but meta.json and the arrays hold {kept} clips"
    return None


def audio_layout(meta: dict, config: FeatureConfig) -> tuple[type, tuple[int, ...]]:
    """The audio array's dtype and per-clip shape: the shape as meta.json recorded it (an ssl cache is
    opened without its model folder), or, in caches older than that record, from the settings."""
    recorded = meta.get("audio_shape")
    return config.audio_dtype, tuple(recorded) if recorded is not None else config.audio_shape


def non_finite(path: Path, rows_at_once: int = 1024) -> str | None:
    """Which row of an array holds a NaN or infinite value, reading it in slices."""
    array = np.load(path, mmap_mode="r")
    for start in range(0, len(array), rows_at_once):
        block = array[start : start + rows_at_once]
        finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if not finite.all():
            return f"{path.name} holds non-finite values (row {start + int(np.argmin(finite))})"
    return None

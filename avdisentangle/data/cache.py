"""The feature cache: preprocessing runs once per corpus and feature config, training reads arrays.

Layout of one cache folder (named after the corpus, its file listing and the feature config):

    parts/part-<start>-<stop>.npz   finished chunks while preparing (deleted when done)
    audio.npy  (N, *audio_shape)    the audio features, memory-mapped by training (with audio only): float16
                                    log-mel (N, n_mels, frames), float32 eGeMAPS (N, 88) or float16 ssl (N, L, K, D)
    video.npy  (N, T, C, S, S)      uint8 face crops, memory-mapped by training (with video only)
    faces.png                       a contact sheet of the face crops, to check detection at a glance
    clips.csv                       one row per kept clip: labels, paths, whether a face was found
    refused.csv                     every clip or file not used, with the reason
    meta.json                       written last: its presence means the cache is complete

Every file is written to a temporary name and renamed, so a killed run leaves finished chunks
behind and the next run resumes from them without redoing any clip. Opening a finished cache
checks that its files agree (`cache_integrity.py`); `prepare_cache` rebuilds a damaged one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avdisentangle.data.cache_integrity import CacheDamaged, damage, read_rows
from avdisentangle.data.contact_sheet import write_contact_sheet
from avdisentangle.data.corpora._files import LFS_POINTER
from avdisentangle.data.extraction import FeatureTable, array_layout, clip_row, run_chunks
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.records import CorpusListing, Refusal, refusals_by_kind
from avdisentangle.errors import UserError

CHUNK_SIZE = 16
# 2: the key follows modification times, refusals read `<kind>: <detail>`; 3: meta.json names the labels;
# 4: the arrays of the configured modalities only, and faces.png
CACHE_FORMAT = 4
CONTACT_SHEET = "faces.png"


@dataclass
class PrepareSummary:
    """What a prepare run produced, printable as the summary users read."""

    cache_dir: Path
    kept: int
    refused: list[Refusal]
    faces_missing: int
    clips_processed: int = 0
    resumed_clips: int = 0
    from_existing_cache: bool = False

    def lines(self, examples: int = 3) -> list[str]:
        """Counts, then the refusals grouped by kind with a few examples each (all are in refused.csv)."""
        lines = [f"kept {self.kept} clips, refused {len(self.refused)}"]
        if self.resumed_clips:
            lines.append(f"resumed: {self.resumed_clips} clips were already done, extracted {self.clips_processed}")
        for kind, group in refusals_by_kind(self.refused).items():
            shown = "; ".join(f"{r.item} ({r.detail})" if r.detail else r.item for r in group[:examples])
            more = f"; and {len(group) - examples} more" if len(group) > examples else ""
            lines.append(f"  {len(group)} x {kind}: {shown}{more}")
        if self.refused:
            lines.append(f"  every refusal with its reason: {self.cache_dir / 'refused.csv'}")
        pointers = sum(1 for refusal in self.refused if refusal.kind == LFS_POINTER)
        if pointers:
            lines.append(f"{pointers} files are Git LFS pointers, not media: run `git lfs pull` in the corpus folder")
        if self.faces_missing:
            lines.append(f"no face found in {self.faces_missing} of {self.kept} clips: used a centre crop")
        if (self.cache_dir / CONTACT_SHEET).exists():
            lines.append(f"face crops, a few clips per speaker: {self.cache_dir / CONTACT_SHEET}")
        lines.append(f"cache: {self.cache_dir}")
        return lines


@dataclass
class FeatureCache(FeatureTable):
    """A finished cache opened for reading; arrays are memory-mapped, never loaded whole. The label
    names come from its metadata, so sizing a model reads one small file."""

    path: Path
    meta: dict

    @classmethod
    def open(cls, path: str | Path) -> FeatureCache:
        """Open a finished cache after checking that its files agree (`damage`)."""
        path = Path(path)
        if not is_complete(path):
            raise UserError(f"no finished feature cache at {path}: run `python -m avdisentangle prepare` first")
        try:
            clips = read_rows(path / "clips.csv")
        except (OSError, csv.Error, UnicodeDecodeError):
            clips = None  # `damage` names the problem
        problem = damage(path, None if clips is None else len(clips))
        if problem:
            raise CacheDamaged(
                f"feature cache {path} is damaged: {problem}; delete that folder and run "
                "`python -m avdisentangle prepare` with the same options to rebuild it"
            )
        meta = json.loads((path / "meta.json").read_text())
        modalities = FeatureConfig(**meta["features"]).modality_names
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in modalities}
        return cls(audio=arrays.get("audio"), video=arrays.get("video"), clips=clips, path=path, meta=meta)

    @property
    def emotion_names(self) -> list[str]:
        return list(self.meta["emotions"])

    @property
    def speaker_names(self) -> list[str]:
        return list(self.meta["speakers"])


def prepare_cache(
    listing: CorpusListing, config: FeatureConfig, cache_dir: Path, *, corpus: str, num_workers: int, progress: bool
) -> PrepareSummary:
    """The cache at `cache_dir`: reported when it is there and whole, rebuilt when it is damaged,
    built (resuming finished chunks) when it is missing."""
    if is_complete(cache_dir):
        problem = damage(cache_dir)
        if not problem:
            return read_summary(cache_dir)
        warnings.warn(f"feature cache {cache_dir} is damaged ({problem}): rebuilding it", stacklevel=2)
        shutil.rmtree(cache_dir)
    return build_cache(listing, config, cache_dir, corpus=corpus, num_workers=num_workers, progress=progress)


def file_signature(path: Path) -> tuple[int, int]:
    """(size, modification time in ns): changes whenever a file is rewritten, without reading it."""
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def cache_dir_for(
    cache_root: str | Path, corpus: str, root: Path, listing: CorpusListing, config: FeatureConfig
) -> Path:
    """The folder for this corpus content and feature config; any change gives a new folder.
    A file's content counts through its size and modification time (`file_signature`)."""
    digest = hashlib.sha1(f"{corpus}|{root.resolve()}|{CACHE_FORMAT}".encode())
    for clip in listing.clips:
        signatures = [file_signature(Path(p)) for p in (clip.audio_path, clip.video_path) if p is not None]
        digest.update(f"{clip.clip_id}|{clip.speaker}|{clip.emotion}|{signatures}\n".encode())
    return Path(cache_root) / f"{corpus}-{root.name}-{digest.hexdigest()[:8]}-{config.fingerprint()}"


def is_complete(cache_dir: Path) -> bool:
    return (cache_dir / "meta.json").exists()


def build_cache(
    listing: CorpusListing,
    config: FeatureConfig,
    cache_dir: Path,
    *,
    corpus: str,
    num_workers: int = 2,
    progress: bool = True,
) -> PrepareSummary:
    """Extract features for every clip of `listing` into `cache_dir`, resuming finished chunks."""
    parts_dir = cache_dir / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    chunks = [(start, listing.clips[start : start + CHUNK_SIZE]) for start in range(0, len(listing.clips), CHUNK_SIZE)]
    todo = [(start, clips) for start, clips in chunks if not part_path(parts_dir, start, len(clips)).exists()]
    resumed = len(listing.clips) - sum(len(clips) for _, clips in todo)
    results = run_chunks(todo, config, num_workers)
    with tqdm(
        total=len(listing.clips), initial=resumed, desc=f"prepare {corpus}", unit="clip", disable=not progress
    ) as bar:
        for start, result in results:
            write_part(part_path(parts_dir, start, result["count"]), result)
            bar.update(result["count"])
    summary = consolidate(listing, config, cache_dir, [(start, len(clips)) for start, clips in chunks], corpus)
    summary.clips_processed = len(listing.clips) - resumed
    summary.resumed_clips = resumed
    if summary.faces_missing:
        warnings.warn(
            f"no face found in {summary.faces_missing} of {summary.kept} clips: used a centre crop", stacklevel=2
        )
    return summary


def part_path(parts_dir: Path, start: int, count: int) -> Path:
    return parts_dir / f"part-{start:07d}-{start + count:07d}.npz"


def write_part(path: Path, result: dict) -> None:
    arrays = {key: value for key, value in result.items() if key != "count"}
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        write(handle)
    os.replace(tmp, path)


def consolidate(listing: CorpusListing, config: FeatureConfig, cache_dir: Path, chunks, corpus: str) -> PrepareSummary:
    """Join the finished parts into the memory-mapped arrays and tables; meta.json last."""
    parts = [np.load(part_path(cache_dir / "parts", start, count)) for start, count in chunks]
    kept = sum(len(part["kept"]) for part in parts)
    arrays = {}
    for name in config.modality_names:
        dtype, shape = array_layout(name, config)
        arrays[name] = np.lib.format.open_memmap(
            cache_dir / f".{name}.npy.tmp", mode="w+", dtype=dtype, shape=(kept, *shape)
        )
    rows, refused, row = [], list(listing.refused), 0
    for (start, _), part in zip(chunks, parts):
        count = len(part["kept"])
        for name, array in arrays.items():
            array[row : row + count] = part[name]
        for position, face_found in zip(part["kept"].tolist(), part["face_found"].tolist()):
            rows.append(clip_row(listing.clips[start + position], face_found, config))
        refused += [Refusal(item, reason) for item, reason in json.loads(str(part["refused"]))]
        row += count
    for name, array in arrays.items():
        array.flush()
        os.replace(cache_dir / f".{name}.npy.tmp", cache_dir / f"{name}.npy")
    if "video" in arrays and kept:
        write_contact_sheet(cache_dir / CONTACT_SHEET, arrays["video"], rows, atomic_write)
    audio_shape = list(arrays["audio"].shape[1:]) if "audio" in arrays else None
    del arrays
    write_table(cache_dir / "clips.csv", rows)
    write_table(
        cache_dir / "refused.csv", [{"item": r.item, "reason": r.reason} for r in refused], fields=["item", "reason"]
    )
    faces_missing = sum(1 for r in rows if r["face_found"] == "0")
    meta = {
        "format": CACHE_FORMAT,
        "corpus": corpus,
        "features": asdict(config),
        "audio_shape": audio_shape,  # what the integrity check expects without the ssl model folder at hand
        "kept": kept,
        "refused": len(refused),
        "faces_missing": faces_missing,
        "emotions": sorted({row["emotion"] for row in rows}),
        "speakers": sorted({row["speaker"] for row in rows}),
    }
    atomic_write(cache_dir / "meta.json", lambda handle: handle.write(json.dumps(meta, indent=2).encode()))
    shutil.rmtree(cache_dir / "parts", ignore_errors=True)
    return PrepareSummary(cache_dir=cache_dir, kept=kept, refused=refused, faces_missing=faces_missing)


def write_table(path: Path, rows: list[dict[str, str]], fields: list[str] | None = None) -> None:
    fields = fields or (list(rows[0]) if rows else ["clip_id", "speaker", "emotion"])

    def write(handle):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        handle.write(text.getvalue().encode())

    atomic_write(path, write)


def read_summary(cache_dir: Path) -> PrepareSummary:
    """The summary of a finished cache, for a prepare that finds nothing left to do."""
    meta = json.loads((cache_dir / "meta.json").read_text())
    refused = [Refusal(row["item"], row["reason"]) for row in read_rows(cache_dir / "refused.csv")]
    return PrepareSummary(
        cache_dir=cache_dir,
        kept=meta["kept"],
        refused=refused,
        faces_missing=meta["faces_missing"],
        from_existing_cache=True,
    )

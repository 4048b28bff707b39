"""The feature cache: preprocessing runs once per corpus and feature config, training reads arrays.

Layout of one cache folder (named after the corpus, its file listing and the feature config):

    parts/part-<start>-<stop>.npz   finished chunks while preparing (deleted when done)
    audio.npy  (N, n_mels, frames)  float16 log-mel, memory-mapped by training
    video.npy  (N, T, C, S, S)      uint8 face crops, memory-mapped by training
    clips.csv                       one row per kept clip: labels, paths, whether a face was found
    refused.csv                     every clip or file not used, with the reason
    meta.json                       written last: its presence means the cache is complete

Every file is written to a temporary name and renamed, so a killed run leaves finished chunks
behind and the next run resumes from them without redoing any clip.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avdisentangle.data.features import ClipRefused, FeatureConfig, extract_clip, load_face_detector
from avdisentangle.data.records import ClipRecord, CorpusListing, Refusal

CHUNK_SIZE = 16
CACHE_FORMAT = 1


@dataclass
class PrepareSummary:
    """What a prepare run produced, printable as the summary users read."""

    cache_dir: Path
    kept: int
    refused: list[Refusal]
    faces_missing: int
    seconds: float = 0.0
    clips_processed: int = 0
    resumed_clips: int = 0
    from_existing_cache: bool = False

    def lines(self) -> list[str]:
        lines = [f"kept {self.kept} clips, refused {len(self.refused)}"]
        if self.resumed_clips:
            lines.append(f"resumed: {self.resumed_clips} clips were already done, extracted {self.clips_processed}")
        lines += [f"  refused {item.item}: {item.reason}" for item in self.refused]
        if self.faces_missing:
            lines.append(f"no face found in {self.faces_missing} of {self.kept} clips: used a centre crop")
        lines.append(f"cache: {self.cache_dir}")
        return lines


@dataclass
class FeatureCache:
    """A finished cache opened for reading; arrays are memory-mapped, never loaded whole."""

    path: Path
    audio: np.ndarray
    video: np.ndarray
    clips: list[dict[str, str]]
    meta: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> "FeatureCache":
        path = Path(path)
        if not (path / "meta.json").exists():
            raise FileNotFoundError(f"no finished feature cache at {path}: run `python -m avdisentangle prepare` first")
        with (path / "clips.csv").open(newline="") as handle:
            clips = list(csv.DictReader(handle))
        return cls(
            path=path,
            audio=np.load(path / "audio.npy", mmap_mode="r"),
            video=np.load(path / "video.npy", mmap_mode="r"),
            clips=clips,
            meta=json.loads((path / "meta.json").read_text()),
        )

    def column(self, name: str) -> np.ndarray:
        return np.array([clip[name] for clip in self.clips])


def cache_dir_for(cache_root: str | Path, corpus: str, root: Path, listing: CorpusListing, config: FeatureConfig) -> Path:
    """The folder for this corpus content and feature config; any change gives a new folder."""
    digest = hashlib.sha1(f"{corpus}|{root.resolve()}|{CACHE_FORMAT}".encode())
    for clip in listing.clips:
        sizes = [Path(p).stat().st_size for p in (clip.audio_path, clip.video_path)]
        digest.update(f"{clip.clip_id}|{clip.speaker}|{clip.emotion}|{sizes}\n".encode())
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
    started = time.perf_counter()
    parts_dir = cache_dir / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    chunks = [
        (start, listing.clips[start : start + CHUNK_SIZE]) for start in range(0, len(listing.clips), CHUNK_SIZE)
    ]
    todo = [(start, clips) for start, clips in chunks if not part_path(parts_dir, start, len(clips)).exists()]
    resumed = len(listing.clips) - sum(len(clips) for _, clips in todo)
    with tqdm(total=len(listing.clips), initial=resumed, desc=f"prepare {corpus}", unit="clip", disable=not progress) as bar:
        for start, result in run_chunks(todo, config, num_workers):
            write_part(part_path(parts_dir, start, result["count"]), result)
            bar.update(result["count"])
    summary = consolidate(listing, config, cache_dir, [(start, len(clips)) for start, clips in chunks], corpus)
    summary.seconds = time.perf_counter() - started
    summary.clips_processed = len(listing.clips) - resumed
    summary.resumed_clips = resumed
    if summary.faces_missing:
        warnings.warn(f"no face found in {summary.faces_missing} of {summary.kept} clips: used a centre crop", stacklevel=2)
    return summary


def run_chunks(todo, config: FeatureConfig, num_workers: int):
    """Yield (start, result) per chunk, in a process pool when num_workers > 0."""
    if num_workers <= 0 or len(todo) <= 1:
        init_worker()
        for start, clips in todo:
            yield start, process_chunk(clips, config)
        return
    # spawn, not fork: the parent may already run torch's thread pools, which fork can deadlock.
    with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn"), initializer=init_pool_worker) as pool:
        futures = [(start, pool.submit(process_chunk, clips, config)) for start, clips in todo]
        for start, future in futures:
            yield start, future.result()


_detector = None


def init_worker() -> None:
    """Pay the per-process costs once: the Haar cascade load and librosa's numba JIT."""
    global _detector
    import cv2
    import librosa

    cv2.setNumThreads(1)
    if _detector is None:
        _detector = load_face_detector()
        librosa.feature.melspectrogram(y=np.zeros(4096, dtype=np.float32), sr=16000, n_fft=512, hop_length=160)


def init_pool_worker() -> None:
    """`init_worker`, then one BLAS thread: a pool runs one process per core, and OpenBLAS's
    helper threads, spinning after librosa's matrix products, doubled the CPU time of every clip
    (face detection: 15.6 ms of CPU with one BLAS thread, 30 ms with two)."""
    from threadpoolctl import threadpool_limits

    init_worker()
    threadpool_limits(1)


def process_chunk(clips: list[ClipRecord], config: FeatureConfig) -> dict:
    """Features of a chunk of clips; a refused clip becomes its reason, never an exception."""
    audio, video, positions, faces, refused = [], [], [], [], []
    for position, clip in enumerate(clips):
        try:
            features = extract_clip(clip, config, _detector)
        except ClipRefused as reason:
            refused.append((clip.clip_id, str(reason)))
            continue
        audio.append(features.audio)
        video.append(features.video)
        positions.append(position)
        faces.append(features.face_found)
    return {
        "audio": np.stack(audio) if audio else np.zeros((0, *config.audio_shape), np.float16),
        "video": np.stack(video) if video else np.zeros((0, *config.video_shape), np.uint8),
        "kept": np.array(positions, dtype=np.int64),
        "face_found": np.array(faces, dtype=bool),
        "refused": json.dumps(refused),
        "count": len(clips),
    }


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
    audio = np.lib.format.open_memmap(cache_dir / ".audio.npy.tmp", mode="w+", dtype=np.float16, shape=(kept, *config.audio_shape))
    video = np.lib.format.open_memmap(cache_dir / ".video.npy.tmp", mode="w+", dtype=np.uint8, shape=(kept, *config.video_shape))
    rows, refused, row = [], list(listing.refused), 0
    for (start, _), part in zip(chunks, parts):
        count = len(part["kept"])
        audio[row : row + count] = part["audio"]
        video[row : row + count] = part["video"]
        for position, face_found in zip(part["kept"].tolist(), part["face_found"].tolist()):
            rows.append(clip_row(listing.clips[start + position], face_found))
        refused += [Refusal(item, reason) for item, reason in json.loads(str(part["refused"]))]
        row += count
    audio.flush()
    video.flush()
    del audio, video
    os.replace(cache_dir / ".audio.npy.tmp", cache_dir / "audio.npy")
    os.replace(cache_dir / ".video.npy.tmp", cache_dir / "video.npy")
    write_csv(cache_dir / "clips.csv", rows)
    write_csv(cache_dir / "refused.csv", [{"item": r.item, "reason": r.reason} for r in refused], fields=["item", "reason"])
    faces_missing = sum(1 for r in rows if r["face_found"] == "0")
    meta = {
        "format": CACHE_FORMAT,
        "corpus": corpus,
        "features": asdict(config),
        "kept": kept,
        "refused": len(refused),
        "faces_missing": faces_missing,
    }
    atomic_write(cache_dir / "meta.json", lambda handle: handle.write(json.dumps(meta, indent=2).encode()))
    shutil.rmtree(cache_dir / "parts", ignore_errors=True)
    return PrepareSummary(cache_dir=cache_dir, kept=kept, refused=refused, faces_missing=faces_missing)


def clip_row(clip: ClipRecord, face_found: bool) -> dict[str, str]:
    return {
        "clip_id": clip.clip_id,
        "speaker": clip.speaker,
        "emotion": clip.emotion,
        "face_found": "1" if face_found else "0",
        "audio_path": str(clip.audio_path),
        "video_path": str(clip.video_path),
        "extras": json.dumps(clip.extras, sort_keys=True),
    }


def write_csv(path: Path, rows: list[dict[str, str]], fields: list[str] | None = None) -> None:
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
    with (cache_dir / "refused.csv").open(newline="") as handle:
        refused = [Refusal(row["item"], row["reason"]) for row in csv.DictReader(handle)]
    return PrepareSummary(
        cache_dir=cache_dir, kept=meta["kept"], refused=refused, faces_missing=meta["faces_missing"], from_existing_cache=True
    )

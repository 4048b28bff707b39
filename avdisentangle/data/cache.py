"""The feature cache: preprocessing runs once per corpus and feature config, training reads arrays.

Layout of one cache folder (named after the corpus, its file listing and the feature config):

    parts/part-<start>-<stop>.npz   finished chunks while preparing (deleted when done)
    audio.npy  (N, n_mels, frames)  float16 log-mel, memory-mapped by training
    video.npy  (N, T, C, S, S)      uint8 face crops, memory-mapped by training
    clips.csv                       one row per kept clip: labels, paths, whether a face was found
    refused.csv                     every clip or file not used, with the reason
    meta.json                       written last: its presence means the cache is complete

Every file is written to a temporary name and renamed, so a killed run leaves finished chunks
behind and the next run resumes from them without redoing any clip. Opening a finished cache
checks that its files agree (`damage`), since a cache edited or cut short would otherwise pair
features with the wrong labels without a word.
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avdisentangle.data.features import ClipRefused, FeatureConfig, describe_error, extract_clip, load_face_detector
from avdisentangle.data.corpora._files import LFS_POINTER
from avdisentangle.data.records import ClipRecord, CorpusListing, Refusal, refusals_by_kind
from avdisentangle.errors import ExpectedFailure, UserError
from avdisentangle.workers import exit_with_parent

CHUNK_SIZE = 16
CACHE_FORMAT = 2  # 2: the key follows modification times; refusals read `<kind>: <detail>`


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
        """Open a finished cache after checking that its files agree (`damage`)."""
        path = Path(path)
        if not is_complete(path):
            raise UserError(f"no finished feature cache at {path}: run `python -m avdisentangle prepare` first")
        problem = damage(path)
        if problem:
            raise CacheDamaged(
                f"feature cache {path} is damaged: {problem}; delete that folder and run "
                "`python -m avdisentangle prepare` with the same options to rebuild it"
            )
        return cls(
            path=path,
            audio=np.load(path / "audio.npy", mmap_mode="r"),
            video=np.load(path / "video.npy", mmap_mode="r"),
            clips=read_rows(path / "clips.csv"),
            meta=json.loads((path / "meta.json").read_text()),
        )

    def column(self, name: str) -> np.ndarray:
        return np.array([clip[name] for clip in self.clips])


class CacheDamaged(ExpectedFailure):
    """A finished cache whose files disagree with each other (edited, truncated or half-copied)."""


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def npy_problem(path: Path, shape: tuple[int, ...]) -> str | None:
    """Why a .npy file does not hold an array of `shape` in full, from its header and size alone."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            found, _, dtype = read_header(handle)
            data_start = handle.tell()
    except (OSError, ValueError) as error:
        return f"{path.name} is unreadable ({describe_error(error)})"
    if tuple(found) != tuple(shape):
        return f"{path.name} holds an array of shape {tuple(found)}, meta.json records {tuple(shape)}"
    expected = data_start + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        return f"{path.name} is truncated: {size} bytes, its header declares {expected}"
    return None


def damage(cache_dir: Path) -> str | None:
    """What is wrong with a finished cache, naming the damaged file, or None when `meta.json`,
    `clips.csv`, `audio.npy` and `video.npy` agree on the clip count and the arrays have their
    recorded shapes. Reads headers, sizes and the clip table only: fast enough for every open."""
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
        kept, config = int(meta["kept"]), FeatureConfig(**meta["features"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"meta.json is unreadable or from another version ({describe_error(error)})"
    for name, shape in (("audio.npy", config.audio_shape), ("video.npy", config.video_shape)):
        if problem := npy_problem(cache_dir / name, (kept, *shape)):
            return problem
    try:
        rows = len(read_rows(cache_dir / "clips.csv"))
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        return f"clips.csv is unreadable ({describe_error(error)})"
    if rows != kept:
        return f"clips.csv has {rows} rows, but meta.json and the arrays hold {kept} clips"
    return None


def file_signature(path: Path) -> tuple[int, int]:
    """(size, modification time in ns): changes whenever a file is rewritten, without reading it."""
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def cache_dir_for(cache_root: str | Path, corpus: str, root: Path, listing: CorpusListing, config: FeatureConfig) -> Path:
    """The folder for this corpus content and feature config; any change gives a new folder.
    A file's content counts through its size and modification time (`file_signature`)."""
    digest = hashlib.sha1(f"{corpus}|{root.resolve()}|{CACHE_FORMAT}".encode())
    for clip in listing.clips:
        signatures = [file_signature(Path(p)) for p in (clip.audio_path, clip.video_path)]
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
    """Yield (start, result) per chunk, in a process pool when num_workers > 0.

    A pool's results come as chunks finish, not in submission order: a slow chunk no longer
    holds back the progress bar and the parts finished after it, and a result is dropped once
    yielded (holding every future kept all of CREMA-D's features, ~0.4 GB, in the parent)."""
    if num_workers <= 0 or len(todo) <= 1:
        init_worker()
        for start, clips in todo:
            yield start, process_chunk(clips, config)
        return
    # spawn, not fork: the parent may already run torch's thread pools, which fork can deadlock.
    with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn"), initializer=init_pool_worker) as pool:
        starts = {pool.submit(process_chunk, clips, config): start for start, clips in todo}
        for future in as_completed(starts):
            yield starts.pop(future), future.result()


_detector = None


def init_worker() -> None:
    """Pay the per-process costs once: OpenCV on one thread, the Haar cascade load.

    librosa is not warmed up here: the first clip whose audio is decoded imports it (and its numba
    code: 2.5 s of CPU per process with numba's cache filled, ~30 s when that cache is empty, as on
    a first run). Paid here, it delayed every worker's first chunk, and the progress bar's first
    estimate with it, even for a corpus whose clips are all refused before decoding."""
    global _detector
    import cv2

    cv2.setNumThreads(1)
    if _detector is None:
        _detector = load_face_detector()


def init_pool_worker() -> None:
    """`exit_with_parent`, `init_worker`, then one BLAS thread: a pool runs one process per core,
    and OpenBLAS's helper threads, spinning after librosa's matrix products, doubled the CPU time
    of every clip (face detection: 15.6 ms of CPU with one BLAS thread, 30 ms with two)."""
    from threadpoolctl import threadpool_limits

    exit_with_parent()  # first: a worker of a killed prepare must not outlive it
    init_worker()
    threadpool_limits(1)  # the BLAS libraries loaded already (numpy's)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # and those the first decoded clip loads (scipy's, through librosa)


def process_chunk(clips: list[ClipRecord], config: FeatureConfig) -> dict:
    """Features of a chunk of clips; a refused clip becomes its reason, never an exception."""
    audio, video, positions, faces, refused = [], [], [], [], []
    for position, clip in enumerate(clips):
        try:
            features = extract_clip(clip, config, _detector)
        except ClipRefused as reason:
            refused.append((clip.clip_id, str(reason)))
            continue
        except Exception as error:  # one clip's failure, whatever its kind, must not stop the corpus
            refused.append((clip.clip_id, f"feature extraction failed: {describe_error(error)}"))
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
    refused = [Refusal(row["item"], row["reason"]) for row in read_rows(cache_dir / "refused.csv")]
    return PrepareSummary(
        cache_dir=cache_dir, kept=meta["kept"], refused=refused, faces_missing=meta["faces_missing"], from_existing_cache=True
    )

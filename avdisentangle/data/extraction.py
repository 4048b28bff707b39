"""Feature extraction of many clips: chunks of clips, in worker processes or in this one.

A chunk's result is plain arrays plus the refused clips and their reasons, never an exception:
one bad clip must not stop a corpus. The cache (`cache.py`) writes chunk results to disk; predict
extracts a few loose clips in memory (`extract_in_memory`). For ssl audio, workers return the
windows and this process embeds each chunk as it arrives (`finish_chunk`): one model, batched, on the
GPU when there is one, instead of a copy per worker.
"""

from __future__ import annotations

import importlib.util
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from avdisentangle.data.clip_errors import ClipRefused, describe_error
from avdisentangle.data.faces import load_face_detector
from avdisentangle.data.features import FeatureConfig, extract_clip
from avdisentangle.data.records import ClipRecord, CorpusListing, Refusal
from avdisentangle.data.ssl_features import speech_embedder
from avdisentangle.errors import UserError
from avdisentangle.workers import exit_with_parent


@dataclass
class FeatureTable:
    """Features of clips and one row per clip (labels, paths, whether a face was found): what a
    dataset reads, whether from a cache on disk (memory-mapped) or extracted in memory. A modality
    the features do not include has no array (None)."""

    audio: np.ndarray | None
    video: np.ndarray | None
    clips: list[dict[str, str]]

    def column(self, name: str) -> np.ndarray:
        return np.array([clip[name] for clip in self.clips])


def extract_in_memory(listing: CorpusListing, config: FeatureConfig) -> tuple[FeatureTable, list[Refusal]]:
    """Features of a few clips in this process, without a cache (prediction on loose files), and
    every item refused by the reader or by extraction."""
    prepare_audio_backend(config)
    init_worker()
    result = finish_chunk(process_chunk(listing.clips, config), listing.clips, config)
    kept = [listing.clips[position] for position in result["kept"].tolist()]
    rows = [clip_row(clip, face_found, config) for clip, face_found in zip(kept, result["face_found"].tolist())]
    refused = list(listing.refused) + [Refusal(item, reason) for item, reason in json.loads(result["refused"])]
    return FeatureTable(result.get("audio"), result.get("video"), rows), refused


def run_chunks(todo, config: FeatureConfig, num_workers: int):
    """(start, result) per chunk, in a process pool when num_workers > 0 (`chunk_results`); what the audio
    features need is checked first, before any worker starts or a progress bar is drawn."""
    if todo:
        prepare_audio_backend(config)
    return chunk_results(todo, config, num_workers)


def prepare_audio_backend(config: FeatureConfig) -> None:
    """A missing optional package or a bad ssl model folder as one line (UserError), not as a refusal of
    every clip; the ssl model is loaded here, once."""
    if "audio" not in config.modality_names or config.audio == "logmel":
        return
    package = "opensmile" if config.audio == "egemaps" else "transformers"
    if importlib.util.find_spec(package) is None:
        raise UserError(f"features.audio={config.audio} needs {package}: pip install 'avdisentangle[ssl]'")
    if config.audio == "ssl":
        speech_embedder(config.ssl)


def chunk_results(todo, config: FeatureConfig, num_workers: int):
    """Yield (start, result) per chunk, in a process pool when num_workers > 0.

    A pool's results come as chunks finish, not in submission order: a slow chunk no longer
    holds back the progress bar and the parts finished after it, and a result is dropped once
    yielded (holding every future kept all of CREMA-D's features, ~0.4 GB, in the parent)."""
    if num_workers <= 0 or len(todo) <= 1:
        init_worker()
        for start, clips in todo:
            yield start, finish_chunk(process_chunk(clips, config), clips, config)
        return
    # spawn, not fork: the parent may already run torch's thread pools, which fork can deadlock.
    with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn"), initializer=init_pool_worker) as pool:
        chunks = {pool.submit(process_chunk, clips, config): (start, clips) for start, clips in todo}
        for future in as_completed(chunks):
            start, clips = chunks.pop(future)
            yield start, finish_chunk(future.result(), clips, config)


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
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in config.modality_names}
    positions, faces, samples, refused = [], [], [], []
    for position, clip in enumerate(clips):
        try:
            features = extract_clip(clip, config, _detector)
        except ClipRefused as reason:
            refused.append((clip.clip_id, str(reason)))
            continue
        except Exception as error:  # one clip's failure, whatever its kind, must not stop the corpus
            refused.append((clip.clip_id, f"feature extraction failed: {describe_error(error)}"))
            continue
        for name, values in arrays.items():
            values.append(getattr(features, name))
        positions.append(position)
        faces.append(bool(features.face_found))
        samples.append(features.audio_samples)
    return {
        **{name: stack_or_empty(values, name, config) for name, values in arrays.items()},
        "kept": np.array(positions, dtype=np.int64),
        "face_found": np.array(faces, dtype=bool),
        "audio_samples": np.array(samples, dtype=np.int64),
        "refused": json.dumps(refused),
        "count": len(clips),
    }


def finish_chunk(result: dict, clips: list[ClipRecord], config: FeatureConfig) -> dict:
    """A worker's chunk as the cache holds it: for ssl, the windows embedded here, and a clip whose
    embedding is not finite (float16 overflow) refused like any other."""
    samples = result.pop("audio_samples")
    if config.audio != "ssl" or "audio" not in config.modality_names:
        return result
    audio = speech_embedder(config.ssl)(result["audio"], samples)
    finite = np.isfinite(audio.reshape(len(audio), -1)).all(axis=1)
    refused = json.loads(result["refused"])
    refused += [(clips[position].clip_id, "ssl features not finite (float16 overflow)")
                for position in result["kept"][~finite].tolist()]
    kept = {name: result[name][finite] for name in (*config.modality_names, "kept", "face_found") if name != "audio"}
    return {**result, **kept, "audio": audio[finite], "refused": json.dumps(refused)}


def array_layout(name: str, config: FeatureConfig) -> tuple[type, tuple[int, ...]]:
    """The dtype and per-clip shape of a modality's cached array: the audio features
    (`FeatureConfig.audio_shape`), uint8 face crops."""
    return (config.audio_dtype, config.audio_shape) if name == "audio" else (np.uint8, config.video_shape)


def stack_or_empty(values: list[np.ndarray], name: str, config: FeatureConfig) -> np.ndarray:
    """The chunk's array; a worker's ssl audio is still the raw window (float32), which `finish_chunk` embeds."""
    if name == "audio" and config.audio == "ssl":
        dtype, shape = np.float32, (config.window_samples,)
    else:
        dtype, shape = array_layout(name, config)
    return np.stack(values) if values else np.zeros((0, *shape), dtype)


def clip_row(clip: ClipRecord, face_found: bool, config: FeatureConfig) -> dict[str, str]:
    """A clip's row in clips.csv; `face_found` and a path are empty for a modality the features lack."""
    video = "video" in config.modality_names
    return {
        "clip_id": clip.clip_id,
        "speaker": clip.speaker,
        "emotion": clip.emotion,
        "face_found": ("1" if face_found else "0") if video else "",
        "audio_path": "" if clip.audio_path is None else str(clip.audio_path),
        "video_path": "" if clip.video_path is None else str(clip.video_path),
        "extras": json.dumps(clip.extras, sort_keys=True),
    }

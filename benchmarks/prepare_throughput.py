"""Preprocessing throughput: `prepare` (decode + face detection + crop + log-mel + cache writes)
beside the floor measured in the same run, OpenCV decoding every frame of the same videos with
the same number of processes and no other work.

    python benchmarks/prepare_throughput.py --workers 2 --speakers 10 --clips 36 --width 480 --height 360 --fps 30

Prints clips/s and frames/s of both and their ratio, over the whole run and with each pool's
worker start-up (measured apart, in the same run) taken out, and extrapolates to CREMA-D (7,442
clips): start-up once, plus the rest scaled by the clip count.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from avdisentangle.data.cache import build_cache, cache_dir_for
from avdisentangle.data.corpora import read_corpus
from avdisentangle.data.corpora.cremad import CLIP_COUNT as CREMAD_CLIPS
from avdisentangle.data.extraction import init_pool_worker
from avdisentangle.data.faces import open_video
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus


def decode_all(path: str) -> int:
    """Decode every frame of one video, on one thread as `prepare` does; returns the frame count."""
    capture = open_video(path)
    frames = 0
    while capture.grab():
        capture.retrieve()
        frames += 1
    capture.release()
    return frames


def pool_startup(workers: int, initializer) -> float:
    """Seconds until `workers` fresh spawn processes have run `initializer` (the fixed cost of a pool,
    paid once per run; the extrapolation adds it once and scales the rest by the clip count)."""
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=initializer) as pool:
        list(pool.map(abs, range(workers)))
    return time.perf_counter() - started


def init_and_warm_up() -> None:
    """A prepare worker's start-up in full: its initializer, then librosa's numba code, which the
    worker loads with its first decoded clip (counted here as start-up, as it was when the
    initializer paid it)."""
    import librosa
    import numpy as np

    init_pool_worker()
    librosa.feature.melspectrogram(y=np.zeros(4096, dtype=np.float32), sr=16000, n_fft=512, hop_length=160)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--clips", type=int, default=36, help="clips per speaker")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--corpus", type=Path, default=None, help="reuse/keep the generated corpus here")
    args = parser.parse_args()

    synthetic = SyntheticConfig(
        num_speakers=args.speakers, clips_per_speaker=args.clips, width=args.width, height=args.height, fps=args.fps,
        min_duration_s=1.3, max_duration_s=5.0,
    )
    root = args.corpus or Path(tempfile.mkdtemp()) / "corpus"
    generate_corpus(root, synthetic, progress=True)
    listing = read_corpus("cremad", root)
    videos = [str(clip.video_path) for clip in listing.clips]
    features = FeatureConfig()

    decode_startup = pool_startup(args.workers, initializer=None)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        frames = sum(pool.map(decode_all, videos, chunksize=8))
    decode_seconds = time.perf_counter() - started

    prepare_startup = pool_startup(args.workers, initializer=init_and_warm_up)
    cache_root = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    summary = build_cache(listing, features, cache_dir_for(cache_root, "cremad", root, listing, features),
                          corpus="cremad", num_workers=args.workers, progress=False)
    prepare_seconds = time.perf_counter() - started
    shutil.rmtree(cache_root)

    clips = len(videos)
    decode_steady, prepare_steady = decode_seconds - decode_startup, prepare_seconds - prepare_startup
    print(f"corpus: {clips} clips, {frames} frames, {args.width}x{args.height} @ {args.fps} fps; "
          f"{args.workers} workers; prepare kept {summary.kept}")
    print(f"{'':34} {'clips/s':>8} {'frames/s':>9} {'seconds':>8}")
    rows = (("decode only, whole run", decode_seconds), ("prepare, whole run", prepare_seconds),
            ("decode only, start-up excluded", decode_steady), ("prepare, start-up excluded", prepare_steady))
    for name, seconds in rows:
        print(f"{name:34} {clips / seconds:8.1f} {frames / seconds:9.0f} {seconds:8.1f}")
    print(f"worker start-up: decode {decode_startup:.1f} s, prepare {prepare_startup:.1f} s "
          f"(imports, Haar cascade, librosa warm-up)")
    print(f"ratio prepare/decode speed: {decode_seconds / prepare_seconds:.2f} whole run, "
          f"{decode_steady / prepare_steady:.2f} start-up excluded (goal 0.70)")
    estimate = prepare_startup + CREMAD_CLIPS * prepare_steady / clips
    print(f"CREMA-D estimate ({CREMAD_CLIPS} clips): {estimate / 60:.1f} min prepare (goal < 10 min), "
          f"{(decode_startup + CREMAD_CLIPS * decode_steady / clips) / 60:.1f} min decode only")
    if args.corpus is None:
        shutil.rmtree(root.parent)


if __name__ == "__main__":
    main()

"""Preprocessing throughput: `prepare` (decode + face detection + crop + log-mel + cache writes)
beside the floor measured in the same run, OpenCV decoding every frame of the same videos with
the same number of processes and no other work.

    python benchmarks/prepare_throughput.py --workers 2 --speakers 10 --clips 36 --width 480 --height 360 --fps 30

Prints clips/s and frames/s of both and their ratio, and extrapolates to CREMA-D (7,442 clips).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2

from avdisentangle.data.cache import build_cache, cache_dir_for
from avdisentangle.data.corpora import read_corpus
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus

CREMAD_CLIPS = 7442


def decode_all(path: str) -> int:
    """Decode every frame of one video; returns the frame count."""
    cv2.setNumThreads(1)
    capture = cv2.VideoCapture(path)
    frames = 0
    while capture.grab():
        capture.retrieve()
        frames += 1
    capture.release()
    return frames


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

    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        frames = sum(pool.map(decode_all, videos, chunksize=8))
    decode_seconds = time.perf_counter() - started

    cache_root = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    summary = build_cache(listing, features, cache_dir_for(cache_root, "cremad", root, listing, features),
                          corpus="cremad", num_workers=args.workers, progress=False)
    prepare_seconds = time.perf_counter() - started
    shutil.rmtree(cache_root)

    clips = len(videos)
    print(f"corpus: {clips} clips, {frames} frames, {args.width}x{args.height} @ {args.fps} fps; {args.workers} workers")
    print(f"decode only : {clips / decode_seconds:8.1f} clips/s {frames / decode_seconds:9.0f} frames/s ({decode_seconds:.1f} s)")
    print(f"prepare     : {clips / prepare_seconds:8.1f} clips/s {frames / prepare_seconds:9.0f} frames/s ({prepare_seconds:.1f} s, kept {summary.kept})")
    print(f"ratio prepare/decode speed: {decode_seconds / prepare_seconds:.2f}")
    print(f"CREMA-D estimate ({CREMAD_CLIPS} clips): {CREMAD_CLIPS / (clips / prepare_seconds) / 60:.1f} min prepare, "
          f"{CREMAD_CLIPS / (clips / decode_seconds) / 60:.1f} min decode only")
    if args.corpus is None:
        shutil.rmtree(root.parent)


if __name__ == "__main__":
    main()

"""Where `prepare`'s wall time goes before and around the work: pool start-up, time to the first
finished chunk, per-chunk hand-off, part writes, consolidation, and wall time against CPU time.

    python benchmarks/prepare_startup.py --workers 2
    python benchmarks/prepare_startup.py --workers 2 --cold-numba   # numba's cache empty (first run)

Field report: CREMA-D cloned without Git LFS (7,442 wav and 7,442 flv files, each a ~130-byte
text pointer) took 3 min 24 s of wall time for 14 s of CPU time, and the first estimate of the
progress bar was 5 h 28 min (so the first chunk of 16 clips took ~42 s). This script writes such a pointer
tree (real CREMA-D names) and a small real corpus (the synthetic one, 4 speakers x 12 clips), and
runs the feature-cache build on both twice, each in a fresh process:

- `before`: the pool code as it was (reproduced below: every worker pays librosa's numba warm-up in
  its initializer, results are taken in submission order);
- `after`: the package as it is now (`avdisentangle.data.cache.build_cache`).
Both use chunks of 16 clips (`avdisentangle.data.cache.CHUNK_SIZE`).

Both read the same listing: the pointer clips go straight to feature extraction, as they did
before the corpus readers learned to refuse LFS pointers up front, so the numbers show what a
corpus whose every clip fails in extraction costs. Stage times are taken from the parent's side
(`write_part` and `consolidate` are wrapped); CPU includes the pool's workers.

A second table times whole commands on the small corpus: `python -m avdisentangle prepare`, the
`avdisentangle` console script, and a console script that imports the command line at module
level (what the console script ran before `avdisentangle.__main__` imported it lazily): spawn
runs the parent's main script again in every worker, so that import was paid per worker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

# Spawned workers run this script again (as __mp_main__): keep module-level imports light.
import avdisentangle.data.cache as cache
import avdisentangle.data.extraction as extraction
from avdisentangle.data.corpora.cremad import CLIP_COUNT as CREMAD_CLIPS
from avdisentangle.data.corpora.cremad import EMOTION_BY_CODE, EMOTION_CODES, SENTENCE_CODES, parse_name
from avdisentangle.data.faces import load_face_detector
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.records import ClipRecord, CorpusListing

REPO = Path(__file__).resolve().parents[1]
ACTORS = range(1001, 1092)


def cremad_names(count: int = CREMAD_CLIPS, seed: int = 0) -> list[str]:
    """`count` distinct CREMA-D clip names: 91 actors; sentence IEO at LO/MD/HI (XX when neutral),
    the other 11 sentences at XX, as in the real corpus (which has 7,442 of these 7,462)."""
    names = [
        f"{actor}_{sentence}_{emotion}_{level}"
        for actor in ACTORS
        for sentence in SENTENCE_CODES
        for emotion in EMOTION_CODES
        for level in (("LO", "MD", "HI") if sentence == "IEO" and emotion != "NEU" else ("XX",))
    ]
    return sorted(random.Random(seed).sample(names, count))


def write_lfs_pointer_tree(root: Path, clips: int = CREMAD_CLIPS) -> Path:
    """AudioWAV/<name>.wav and VideoFlash/<name>.flv as a clone without Git LFS leaves them."""
    for folder in ("AudioWAV", "VideoFlash"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in cremad_names(clips):
        for folder, suffix in (("AudioWAV", "wav"), ("VideoFlash", "flv")):
            oid = hashlib.sha256(f"{name}.{suffix}".encode()).hexdigest()
            size = int(oid[:5], 16) + 40_000
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
            (root / folder / f"{name}.{suffix}").write_text(pointer)
    return root


def unchecked_listing(root: Path) -> CorpusListing:
    """Every well-named wav/flv pair as a clip, without looking inside the files."""
    clips = []
    for wav in sorted((root / "AudioWAV").glob("*.wav")):
        actor, sentence, emotion, level = parse_name(wav.stem)
        clips.append(ClipRecord(wav.stem, wav, root / "VideoFlash" / f"{wav.stem}.flv", actor, EMOTION_BY_CODE[emotion],
                                {"sentence": sentence, "level": level}))
    return CorpusListing(clips, [])


# --- `before`: the pool code of commit 511993c, reproduced ------------------------------------


def before_init_pool_worker() -> None:
    """The old initializer: Haar cascade, librosa's numba warm-up, one BLAS thread."""
    import cv2
    import librosa
    import numpy as np
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    extraction._detector = load_face_detector()
    librosa.feature.melspectrogram(y=np.zeros(4096, dtype=np.float32), sr=16000, n_fft=512, hop_length=160)
    threadpool_limits(1)


def before_run_chunks(todo, config: FeatureConfig, num_workers: int):
    if num_workers <= 0 or len(todo) <= 1:
        raise SystemExit("the benchmark measures the pool: use --workers >= 1 and a corpus of several chunks")
    with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn"), initializer=before_init_pool_worker) as pool:
        futures = [(start, pool.submit(extraction.process_chunk, clips, config)) for start, clips in todo]
        for start, future in futures:
            yield start, future.result()


# --- one measurement, in a fresh process ------------------------------------------------------


def measure(variant: str, corpus: str, root: Path, workers: int) -> dict:
    listing = unchecked_listing(root)
    if variant == "before":
        cache.run_chunks = before_run_chunks
    writes: list[tuple[float, float, int]] = []  # (finished at, seconds spent, clips) per part
    stages: dict[str, float] = {}
    write_part, consolidate = cache.write_part, cache.consolidate

    def timed_write_part(path, result):
        began = time.perf_counter()
        write_part(path, result)
        writes.append((time.perf_counter(), time.perf_counter() - began, result["count"]))

    def timed_consolidate(*args, **kwargs):
        stages["consolidate_began"] = time.perf_counter()
        try:
            return consolidate(*args, **kwargs)
        finally:
            stages["consolidate_s"] = time.perf_counter() - stages["consolidate_began"]

    cache.write_part, cache.consolidate = timed_write_part, timed_consolidate
    cache_root = Path(tempfile.mkdtemp(prefix="prepare-startup-"))
    try:
        before_times, started = os.times(), time.perf_counter()
        summary = cache.build_cache(
            listing, FeatureConfig(), cache_root / "cache", corpus="cremad", num_workers=workers, progress=False
        )
        wall, after_times = time.perf_counter() - started, os.times()
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    finished = [at - started for at, _, _ in writes]
    gaps = [b - a for a, b in zip(finished, finished[1:])]
    clips = len(listing.clips)
    first_clips = writes[0][2] if writes else 0
    return {
        "corpus": corpus,
        "variant": variant,
        "clips": clips,
        "kept": summary.kept,
        "chunks": len(writes),
        "first_chunk_s": finished[0] if finished else float("nan"),
        # What tqdm shows after the first chunk: the remaining clips at the rate seen so far.
        "first_estimate_s": (clips - first_clips) * finished[0] / first_clips if writes else float("nan"),
        "chunks_s": finished[-1] - finished[0] if finished else 0.0,
        "median_gap_ms": 1000 * statistics.median(gaps) if gaps else float("nan"),
        "max_gap_ms": 1000 * max(gaps) if gaps else float("nan"),
        "part_writes_s": sum(seconds for _, seconds, _ in writes),
        "consolidate_s": stages.get("consolidate_s", float("nan")),
        "wall_s": wall,
        "cpu_parent_s": (after_times.user + after_times.system) - (before_times.user + before_times.system),
        "cpu_workers_s": (after_times.children_user + after_times.children_system)
        - (before_times.children_user + before_times.children_system),
    }


def run_measurement(variant: str, corpus: str, root: Path, workers: int, cold_numba: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    numba_cache = tempfile.mkdtemp(prefix="numba-cold-") if cold_numba else None
    if numba_cache:
        env["NUMBA_CACHE_DIR"] = numba_cache
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--measure", variant, corpus, str(root), str(workers)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    finally:
        if numba_cache:
            shutil.rmtree(numba_cache, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def time_command(command: list[str], cache_root: Path, cold_numba: bool) -> tuple[float, float]:
    """(wall, CPU of the command and every process it waited for) of one whole command."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cache_root.mkdir(parents=True)
    if cold_numba:
        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-", dir=cache_root)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


COLUMNS = (  # (heading, width, format of one row)
    ("corpus", -13, "{corpus}"),  # a negative width: left-aligned
    ("code", -7, "{variant}"),
    ("chunks", 6, "{chunks}"),
    ("1st chunk", 9, "{first_chunk_s:.1f}s"),
    ("1st ETA", 8, "{first_estimate_min:.1f}m"),
    ("chunks", 7, "{chunks_s:.1f}s"),
    ("gap med/max", 12, "{median_gap_ms:.1f}/{max_gap_ms:.0f}ms"),
    ("writes", 7, "{part_writes_s:.2f}s"),
    ("consol.", 7, "{consolidate_s:.2f}s"),
    ("wall", 6, "{wall_s:.1f}s"),
    ("CPU par+wrk", 12, "{cpu_parent_s:.1f}+{cpu_workers_s:.1f}s"),
    ("CPU/wall", 8, "{cpu_per_wall:.2f}"),
)
LEGEND = (
    "1st chunk: until the first chunk was written (worker start-up included); 1st ETA: what the progress bar\n"
    "estimated then; chunks: first to last chunk written; gap: between chunks written; writes: the parent's part\n"
    "writes; consol.: consolidation; wall and CPU (parent + workers): the whole feature-cache build"
)


def table_row(runs: list[dict]) -> str:
    """One row: the median of each timing over `runs`."""
    row = {key: statistics.median(run[key] for run in runs) if isinstance(value, float) else value
           for key, value in runs[0].items()}
    row["first_estimate_min"] = row["first_estimate_s"] / 60
    row["cpu_per_wall"] = (row["cpu_parent_s"] + row["cpu_workers_s"]) / row["wall_s"]
    return " ".join(align(cell.format(**row), width) for _, width, cell in COLUMNS)


def align(text: str, width: int) -> str:
    return text.ljust(-width) if width < 0 else text.rjust(width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clips", type=int, default=CREMAD_CLIPS, help="clips in the LFS pointer tree")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each measurement (the median is shown)")
    parser.add_argument("--cold-numba", action="store_true", help="an empty numba cache in every run (a first run)")
    parser.add_argument("--skip-commands", action="store_true", help="skip the whole-command table")
    parser.add_argument("--measure", nargs=4, metavar=("VARIANT", "CORPUS", "ROOT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        variant, corpus, root, workers = args.measure
        print(json.dumps(measure(variant, corpus, Path(root), int(workers))))
        return

    from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus
    work = Path(tempfile.mkdtemp(prefix="prepare-startup-"))
    try:
        small = SyntheticConfig(num_speakers=4, clips_per_speaker=12)
        corpora = {
            "LFS pointers": write_lfs_pointer_tree(work / "pointers", args.clips),
            "small real": generate_corpus(work / "small", small, progress=False),
        }
        numba = "empty (cold)" if args.cold_numba else "as installed"
        print(f"{os.cpu_count()} CPUs, {args.workers} workers, numba cache {numba}, "
              f"load average {os.getloadavg()[0]:.2f} at start; median of {args.repeats}")
        print(" ".join(align(heading, width) for heading, width, _ in COLUMNS))
        for corpus, root in corpora.items():
            for variant in ("before", "after"):
                runs = [run_measurement(variant, corpus, root, args.workers, args.cold_numba)
                        for _ in range(args.repeats)]
                print(table_row(runs), flush=True)
        print(LEGEND)
        if args.skip_commands:
            return
        old_script = work / "avdisentangle-before"
        old_script.write_text("import sys\nfrom avdisentangle.cli import main\n"
                              "if __name__ == '__main__':\n    sys.exit(main())\n")
        console_script = Path(sys.executable).parent / "avdisentangle"
        commands = {"python -m avdisentangle prepare": [sys.executable, "-m", "avdisentangle"]}
        if console_script.exists():
            commands["avdisentangle prepare (console script)"] = [str(console_script)]
        commands["console script importing the CLI at top (before)"] = [sys.executable, str(old_script)]
        print(f"\nwhole command on the small real corpus ({args.workers} workers), median of {args.repeats}:")
        print(f"{'command':52} {'wall':>6} {'CPU incl. workers':>18}")
        for number, (name, command) in enumerate(commands.items()):
            options = ["prepare", "--data.corpus=cremad", f"--data.root={corpora['small real']}",
                       f"--data.prepare_workers={args.workers}", "--data.progress=false"]
            timings = [
                time_command([*command, *options, f"--data.cache_dir={work / f'cache-{number}-{repeat}'}"],
                             work / f"cache-{number}-{repeat}", args.cold_numba)
                for repeat in range(args.repeats)
            ]
            wall, cpu = statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)
            print(f"{name:52} {wall:5.1f}s {cpu:17.1f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

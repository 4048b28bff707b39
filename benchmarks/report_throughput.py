"""What the report's wall time is made of, each figure beside its baseline measured in the same run:

1. writing the built-in corpus: `workers` processes against one;
2. fitting the MLP speaker probe on benchmark-shaped embeddings: one BLAS thread against the default;
3. report runs (short fits, tested and probed): `--jobs 2` side by side, one torch thread each,
   against the same runs one after another with every core.

    python benchmarks/report_throughput.py --clips 384 --runs 4 --epochs 3

The whole `make report PROFILE=quick` is timed by the report itself (summary.md's first line).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus
from avdisentangle.evaluation.probe import make_probe
from avdisentangle.evaluation.report import execute, prepare_benchmark
from avdisentangle.evaluation.run_plan import Profile, plan_runs

CONFIGS = [
    "experiments/configs/base.yaml",
    "experiments/configs/data/benchmark.yaml",
    "experiments/configs/report/quick.yaml",
]


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def corpus_writing(clips: int, workers: int) -> None:
    config = SyntheticConfig(num_speakers=8, clips_per_speaker=clips // 8, speaker_emotion_correlation=0.8)
    with tempfile.TemporaryDirectory() as tmp:
        one = timed(generate_corpus, Path(tmp) / "one", config, progress=False)
        many = timed(generate_corpus, Path(tmp) / "many", config, progress=False, workers=workers)
    print(
        f"corpus, {config.num_speakers * config.clips_per_speaker} clips: 1 process {one:.1f} s, "
        f"{workers} processes {many:.1f} s ({one / many:.2f}x)"
    )


def probe_fitting(repeats: int = 3) -> None:
    """Embeddings shaped as the benchmark's train split: 636 clips, 64 dimensions, 24 speakers."""
    rng = np.random.default_rng(0)
    speakers = rng.integers(0, 24, 636)
    z = rng.normal(size=(636, 64)) + np.eye(64)[speakers] * 1.5

    def fit():
        return make_probe("mlp", 0).fit(z, speakers)

    default = statistics.median(timed(fit) for _ in range(repeats))
    with threadpool_limits(limits=1):
        single = statistics.median(timed(fit) for _ in range(repeats))
    print(
        f"MLP probe fit (median of {repeats}): default BLAS threads {default:.2f} s, one thread {single:.2f} s "
        f"({default / single:.1f}x)"
    )


def report_runs(runs: int, epochs: int) -> None:
    extra = [f"--trainer.max_epochs={epochs}"]
    prepare_benchmark(CONFIGS, extra)
    config_dir = Path("experiments/configs")
    specs = plan_runs(["none", "hsic"], config_dir, Path("experiments/sweeps"), Profile(runs // 2, 0, 1), runs // 2, 0)
    with tempfile.TemporaryDirectory() as tmp:
        sequential = timed(execute, specs, CONFIGS, Path(tmp) / "seq", extra, 1)
        side_by_side = timed(execute, specs, CONFIGS, Path(tmp) / "par", extra, 2)
    print(
        f"{len(specs)} report runs of {epochs} epochs: one after another {sequential:.1f} s, "
        f"2 side by side {side_by_side:.1f} s ({sequential / side_by_side:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=384, help="clips of the corpus-writing test")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=4, help="report runs in each arm (even; 0 skips this part)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    corpus_writing(args.clips, args.workers)
    probe_fitting()
    if args.runs:
        report_runs(args.runs, args.epochs)


if __name__ == "__main__":
    main()

"""The first `make train` after `make setup`, phase by phase, on the built-in corpus in an empty folder.

    python benchmarks/first_run.py --workers 1 2

1. Corpus generation at each worker count, side by side: clips/s, and the files are checked identical.
2. Feature extraction of that corpus (`prepare`) with numba's cache empty, as in a fresh environment
   whose `make setup` did not warm it, beside the same with the cache warmed as `make setup` does.
3. The whole first `make train` (`fit --config base.yaml --config strategy/none.yaml` from an empty
   data folder, numba's cache warm): its wall time, the number the README promises.

Each command runs in a fresh temporary folder with this repository on PYTHONPATH and W&B offline.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "experiments" / "configs"
FIT = ["fit", f"--config={CONFIGS / 'base.yaml'}", f"--config={CONFIGS / 'strategy' / 'none.yaml'}"]
WARM_UP = "from avdisentangle.data.features import warm_up_audio_features; warm_up_audio_features()"


def environment(numba_cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "NUMBA_CACHE_DIR": str(numba_cache),
    }


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one command; its output is kept out of the table but shown when it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


def digest(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files)).hexdigest()


def generation(workers: list[int], scratch: Path, env: dict[str, str]) -> None:
    """The base config's corpus, written at each worker count."""
    settings = yaml.safe_load((CONFIGS / "base.yaml").read_text())["data"]["synthetic"]
    clips = settings["num_speakers"] * settings["clips_per_speaker"]
    digests = set()
    for count in workers:
        root = scratch / f"corpus-{count}"
        code = (
            "from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus; "
            f"generate_corpus({str(root)!r}, SyntheticConfig(**{settings!r}), progress=False, workers={count})"
        )
        seconds = timed([sys.executable, "-c", code], scratch, env)
        digests.add(digest(root))
        print(f"| generation | {count} | {seconds:.1f} | {clips / seconds:.1f} clips/s |", flush=True)
    print(f"files identical across worker counts: {len(digests) == 1}")


def prepare(workers: int, scratch: Path, numba_cache: Path, label: str) -> None:
    """Feature extraction alone, of the corpus the generation step wrote."""
    corpus = scratch / f"corpus-{workers}"
    args = [f"--config={CONFIGS / 'base.yaml'}", f"--data.root={corpus}", f"--data.prepare_workers={workers}"]
    args += [f"--data.cache_dir={scratch / f'features-{label}'}", "--data.progress=false"]
    seconds = timed([sys.executable, "-m", "avdisentangle", "prepare", *args], scratch, environment(numba_cache))
    print(f"| prepare (features only), numba cache {label} | {workers} | {seconds:.1f} | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="generation worker counts to compare")
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs of the first fit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        scratch = Path(tmp)
        warm, cold = scratch / "numba-warm", scratch / "numba-cold"
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
        print("| phase | workers | wall, s | rate |\n| --- | --- | --- | --- |")
        generation(args.workers, scratch, environment(warm))
        seconds = timed([sys.executable, "-c", WARM_UP], scratch, environment(warm))
        print(f"| `make setup`'s numba warm-up | 1 | {seconds:.1f} | |", flush=True)
        most = max(args.workers)
        prepare(most, scratch, cold, "empty")
        prepare(most, scratch, warm, "warm")
        run = scratch / "first-train"
        run.mkdir()
        fit = [sys.executable, "-m", "avdisentangle", *FIT]
        if args.epochs is not None:
            fit.append(f"--trainer.max_epochs={args.epochs}")
        seconds = timed(fit, run, environment(warm))
        print(f"| first `make train` (corpus, features, fit, probe) | {most} | {seconds:.1f} | |")


if __name__ == "__main__":
    main()

"""What each choice of the real-speech recipe is worth, chosen on validation speakers: one variant at a time.

    python benchmarks/speech_ablation.py --root /data/Audio_Speech_Actors_01-24 --folds 0,1 \\
        --variant "recipe=" --variant "no speaker norm=--data.speaker_norm=false" \\
        --variant "2-D CNN=--model.audio_encoder=avdisentangle.models.encoders.AudioEncoder"

Each variant is the recipe (base.yaml, data/ravdess_speech.yaml, model/tdnn_audio.yaml, its epochs) plus
its own fit arguments (comma-separated after `=`), trained on the given folds of RAVDESS's 6-fold
protocol through the package's own runs (`evaluation/runs.py`), two side by side. It prints, per
variant, the best validation UAR (the 4 validation actors of the training folds: what the recipe was
chosen on) and the test UAR of that checkpoint (the held-out fold), per fold and their mean.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from avdisentangle.evaluation.runs import RunSpec, fit_and_evaluate  # noqa: E402

RECIPE = ("base.yaml", "data/ravdess_speech.yaml", "model/tdnn_audio.yaml", "report/quick.yaml")
CONFIGS = [str(REPO / "experiments/configs" / name) for name in RECIPE]


def run_fold(task: tuple[str, int, list[str], str]) -> tuple[str, int, float, float, float]:
    """(variant, fold, best validation UAR, test UAR, seconds) of one protocol fold."""
    name, fold, extra, out = task
    spec = RunSpec("none", str(REPO / "experiments/configs/strategy/none.yaml"), fold, "protocol", fold=fold)
    outcome = fit_and_evaluate(spec, CONFIGS, Path(out) / name.replace(" ", "_") / f"fold{fold}", extra, threads=1)
    val = max(float(row["val/emotion/uar"]) for row in outcome.history if row.get("val/emotion/uar"))
    return name, fold, val, outcome.row["emotion_uar"], outcome.row["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the folder holding Actor_01/ ... Actor_24/ (03-01-*.wav)")
    parser.add_argument("--variant", action="append", required=True, help="NAME=ARG,ARG,... (fit arguments)")
    parser.add_argument("--folds", default="0,1", help="protocol folds, e.g. 0,1 or 0,1,2,3,4,5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", default="results/speech_ablation")
    options = parser.parse_args()
    epochs = yaml.safe_load(Path(CONFIGS[1]).read_text())["trainer"]["max_epochs"]
    common = [f"--data.root={options.root}", "--data.prepare_workers=0", f"--trainer.max_epochs={epochs}"]
    variants = {}
    for text in options.variant:
        name, _, args = text.partition("=")
        variants[name] = common + [arg for arg in args.split(",") if arg]
    folds = [int(fold) for fold in options.folds.split(",")]
    tasks = [(name, fold, extra, options.output) for name, extra in variants.items() for fold in folds]
    started = time.perf_counter()
    with ProcessPoolExecutor(options.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run_fold, tasks))
    print(f"| variant | {' | '.join(f'fold {f} val / test' for f in folds)} | mean val | mean test |")
    print("|" + " --- |" * (len(folds) + 3))
    for name in variants:
        rows = [r for r in results if r[0] == name]
        cells = " | ".join(f"{r[2]:.3f} / {r[3]:.3f}" for r in rows)
        print(f"| {name} | {cells} | {np.mean([r[2] for r in rows]):.3f} | {np.mean([r[3] for r in rows]):.3f} |")
    print(f"{len(tasks)} runs in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()

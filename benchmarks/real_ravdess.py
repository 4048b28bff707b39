"""Real speech: the 1,440 RAVDESS speech wavs (Audio_Speech_Actors_01-24) through the package, as distributed.

    python benchmarks/real_ravdess.py --root /data/Audio_Speech_Actors_01-24
    python benchmarks/real_ravdess.py --root /data/Audio_Speech_Actors_01-24 --audio egemaps --strategies none

The corpus is never downloaded or committed: point --root at the Actor_01 ... Actor_24 folders of
`03-01-*.wav` files (CC BY-NC-SA 4.0). Two reports run on the real-speech recipe (base.yaml, then
`data/ravdess_speech.yaml`: audio only, speaker-normalised; then `model/tdnn_audio.yaml`; with `--audio
egemaps`, `model/egemaps.yaml` instead and no speaker normalisation, which acts on the log-mel), each an
ordinary `python -m avdisentangle report`:

1. the published protocol: 6 speaker folds (actors 1-4, 5-8, ...), every strategy: emotion WA, UA and
   macro-F1 as mean ± std over folds, and each strategy's UA change against `none` paired over the
   folds: emotion on unseen speakers (`results/<name>/protocol/summary.md`);
2. the paper's question on real speech, in the closed set: every strategy over seeds, identity left in
   z_emotion by accuracy and by information, against the floor the emotion label allows, paired with
   `none` (`results/<name>/closed_set/summary.md`).

It prints both summaries and each report's wall time; the README's real-speech tables come from it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEECH = ("base.yaml", "data/ravdess_speech.yaml")
AUDIO_MODELS = {"logmel": ["model/tdnn_audio.yaml"], "egemaps": ["model/egemaps.yaml"]}
AUDIO_FIT_ARGS = {"logmel": [], "egemaps": ["--data.speaker_norm=false"]}


def configs(audio: str) -> list[str]:
    return [str(REPO / "experiments/configs" / name) for name in (*SPEECH, *AUDIO_MODELS[audio])]


def report(name: str, root: str, jobs: int, extra: list[str], fit_args: list[str], audio: str) -> float:
    """Run one report and return its wall time; its output streams to the console."""
    command = [
        sys.executable,
        "-m",
        "avdisentangle",
        "report",
        f"--config=[{', '.join(configs(audio))}]",
        "--profile=quick",
        f"--jobs={jobs}",
        f"--name={name}",
        f"--fit_args=[--data.root={root}, {', '.join(fit_args)}]",
        *extra,
    ]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the folder holding Actor_01/ ... Actor_24/ (03-01-*.wav)")
    parser.add_argument("--name", default="real_ravdess", help="results/<name>/{protocol,closed_set}")
    parser.add_argument("--seeds", type=int, default=3, help="closed-set seeds per strategy")
    parser.add_argument("--strategies", default=None, help="e.g. none,hsic (default: every strategy file)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fit_args", default="", help="extra fit arguments, comma-separated")
    parser.add_argument("--audio", default="logmel", choices=sorted(AUDIO_MODELS), help="the audio features")
    options = parser.parse_args()
    if not Path(options.root).is_dir():
        sys.exit(f"error: --root {options.root} is not a folder")
    # The report adds its profile's file (quick.yaml: the benchmark's 18 epochs) after the configs; the
    # speech config's own epoch count is restated as a fit argument, which comes last, so that it holds.
    epochs = (yaml.safe_load(Path(configs(options.audio)[1]).read_text()).get("trainer") or {}).get("max_epochs")
    fit_args = [f"--trainer.max_epochs={epochs}"] if epochs else []
    fit_args += AUDIO_FIT_ARGS[options.audio]
    fit_args += [arg for arg in options.fit_args.split(",") if arg]
    chosen = [f"--strategies={options.strategies}"] if options.strategies else []
    parts = {
        "protocol": ["--protocol=speaker_folds", *chosen],
        "closed_set": [f"--seeds={options.seeds}", "--folds=0", *chosen],  # unseen speakers: the protocol's folds
    }
    seconds = {
        part: report(f"{options.name}/{part}", options.root, options.jobs, extra, fit_args, options.audio)
        for part, extra in parts.items()
    }
    for part, wall in seconds.items():
        print(f"{part}: {wall / 60:.1f} min, results/{options.name}/{part}/summary.md")


if __name__ == "__main__":
    main()

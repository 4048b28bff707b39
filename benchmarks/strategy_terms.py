"""How hard each strategy pushed, from a finished report: its loss terms beside the emotion loss.

    python benchmarks/strategy_terms.py results/real_ravdess/closed_set

A strategy removes identity only as far as its term moves the encoder. This reads every closed-set
run's `metrics.csv` under the report folder and prints, per strategy (mean over its seeds, last training
epoch): the emotion cross-entropy, each strategy term as logged (weight included) and its share of the
emotion loss, and, for the adversaries, their own speaker cross-entropy (unweighted) beside chance
(log K): an adversary near chance gives the encoder little to hide from, or has been fooled. From
the report's `results.csv` beside them: identity read from z_emotion against the floor, by accuracy
and in bits.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

# The adversaries' speaker cross-entropy, and whether it is logged times the strategy's weight (gradient
# reversal's is; confusion's trains its adversary alone and is logged as it is).
ADVERSARY_TERMS = {"grl/adversary_ce": True, "confusion/adversary_ce": False}


def last_epoch(metrics: Path) -> dict[str, float]:
    """Every `train/...` value logged at the last epoch of one run, and the weight of its strategy (from the
    config.yaml beside it; 0 for none)."""
    with metrics.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    values = {key[6:]: float(value) for key, value in rows[-1].items() if key.startswith("train/") and value}
    config = yaml.safe_load((metrics.parent / "config.yaml").read_text())
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    weights = [c["init_args"]["weight"] for c in callbacks if "weight" in (c.get("init_args") or {})]
    return {**values, "weight": float(weights[0]) if weights else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="a report's output folder (results/<name>)")
    folder = Path(parser.parse_args().report)
    with (folder / "results.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "closed_set"]
    speakers = round(1 / float(rows[0]["chance_speaker"]))
    terms: dict[str, list[dict[str, float]]] = defaultdict(list)
    for metrics in sorted(folder.glob("runs/closed_set/*/lightning_logs/version_*/metrics.csv")):
        strategy = metrics.parts[-4].rsplit("-seed", 1)[0]
        terms[strategy].append(last_epoch(metrics))
    print(f"Adversaries' speaker cross-entropy (unweighted) beside chance, log K = {math.log(speakers):.2f}")
    print("| strategy (weight) | emotion CE | strategy terms (share of emotion CE) | speaker from z_emotion (floor) | "
          "bits (floor) |")
    print("| --- | --- | --- | --- | --- |")
    for strategy, runs in terms.items():
        emotion = np.mean([run["emotion/ce"] for run in runs])
        names = sorted({name for run in runs for name in run if name.startswith(f"{strategy}/")})
        shown = []
        for name in names:
            value = np.mean([run[name] for run in runs])
            text = f"{name} {value:.3g} ({100 * value / emotion:.0f}%)"
            if name in ADVERSARY_TERMS:
                raw = np.mean([run[name] / (run["weight"] if ADVERSARY_TERMS[name] else 1.0) for run in runs])
                text += f", adversary CE {raw:.2f}"
            shown.append(text)
        chosen = [row for row in rows if row["strategy"] == strategy]
        leak = np.mean([float(row["probe_speaker_from_emotion_mlp"]) for row in chosen])
        floor = np.mean([float(row["floor_speaker_from_emotion_label"]) for row in chosen])
        bits = np.mean([float(row["speaker_info_bits"]) for row in chosen])
        floor_bits = np.mean([float(row["floor_info_bits"]) for row in chosen])
        weight = f" ({runs[0]['weight']:g})" if runs[0]["weight"] else ""
        print(f"| {strategy}{weight} | {emotion:.3f} | {'; '.join(shown) or '-'} | {leak:.3f} ({floor:.3f}) | "
              f"{bits:.2f} ({floor_bits:.2f}) |")


if __name__ == "__main__":
    main()

"""The report's tables: per-run CSV, per-configuration summaries with intervals, and summary.md text."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from avdisentangle.evaluation.analysis import BASELINE, fmt, is_nan
from avdisentangle.evaluation.metrics import Interval

RUN_COLUMNS = (
    "strategy",
    "strength",
    "split",
    "seed",
    "fold",
    "emotion_uar",
    "emotion_uar_low",
    "emotion_uar_high",
    "emotion_f1",
    "emotion_wa",
    "speaker_acc",
    "delta_uar_points",
    "probe_speaker_from_emotion_mlp",
    "probe_speaker_from_emotion_mlp_low",
    "probe_speaker_from_emotion_mlp_high",
    "probe_speaker_from_emotion_linear",
    "floor_speaker_from_emotion_label",
    "chance_speaker",
    "disentanglement_floor_pct",
    "speaker_info_bits",
    "speaker_info_bits_low",
    "speaker_info_bits_high",
    "floor_info_bits",
    "speaker_entropy_bits",
    "disentanglement_info_pct",
    "disentanglement_pct",
    "disentanglement_chance_pct",
    "disentanglement_floor_linear_pct",
    "conditional_speaker_from_emotion_mlp",
    "conditional_disentanglement_pct",
    "probe_emotion_from_emotion_linear",
    "probe_speaker_from_identity_linear",
    "probe_emotion_from_identity_linear",
    "emotion_info_from_identity_bits",
    "val_emotion_uar",
    "val_delta_uar_points",
    "val_probe_speaker_from_emotion_mlp",
    "val_floor_speaker_from_emotion_label",
    "val_disentanglement_floor_pct",
    "unseen_speaker_emotion_uar",
    "unseen_speaker_emotion_uar_low",
    "unseen_speaker_emotion_uar_high",
    "unseen_delta_uar_points",
    "seconds",
)


def cell(value) -> str:
    if value is None or is_nan(value):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def csv_text(header: list[str], rows: list[list]) -> str:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([[cell(v) for v in row] for row in rows])
    return text.getvalue()


def write_runs_csv(rows: list[dict], path: Path) -> None:
    """One row per run; columns that do not apply to a run (unseen vs closed set) stay blank."""
    path.write_text(csv_text(list(RUN_COLUMNS), [[row.get(c) for c in RUN_COLUMNS] for row in rows]))


def write_summary_csv(
    summary: dict[tuple, dict],
    split: str,
    path: Path,
    defaults: dict[str, float | None],
    knees: dict[str, float | None] | None = None,
) -> None:
    """Per (strategy, weight): n and, per column, mean, low and high of the 95% interval."""
    columns = [c for c in next(iter(summary.values())) if c != "n"]
    header = ["split", "strategy", "weight", "default", "n"] + [
        f"{c}{s}" for c in columns for s in ("", "_low", "_high")
    ]
    if knees is not None:
        header.append("knee_on_validation")
    rows = []
    for (strategy, strength), stats in summary.items():
        weight = defaults.get(strategy) if strength is None else strength
        row = [split, strategy, weight, "yes" if strength is None else "", stats["n"]] + [
            v for c in columns for v in stats[c]
        ]
        if knees is not None:
            row.append("yes" if weight is not None and knees.get(strategy) == weight else "")
        rows.append(row)
    path.write_text(csv_text(header, rows))


def closed_set_table(summary: dict[tuple, dict]) -> str:
    """The headline table: default strengths, means with 95% intervals over seeds, paired against `none`."""
    lines = [
        "| strategy | emotion UAR | ΔUAR (points) | speaker from z_emotion (MLP) | floor | **D_floor %** "
        "| speaker info (bits) | floor (bits) | **D_info %** | relative % "
        "| chance-norm. % | linear D_floor % | conditional leakage (MLP) | conditional D % |",
        "|" + " --- |" * 14,
    ]
    for (strategy, strength), s in summary.items():
        if strength is not None:
            continue
        paired = strategy != BASELINE
        lines.append(
            f"| {strategy} | {fmt(s['emotion_uar'])} | {fmt(s['delta_uar_points'], 1) if paired else '—'} "
            f"| {fmt(s['probe_speaker_from_emotion_mlp'])} | {s['floor_speaker_from_emotion_label'].mean:.3f} "
            f"| {fmt(s['disentanglement_floor_pct'], 1) if paired else '0'} "
            f"| {fmt(s['speaker_info_bits'], 2)} | {s['floor_info_bits'].mean:.2f} "
            f"| {fmt(s['disentanglement_info_pct'], 1) if paired else '0'} | "
            f"{fmt(s['disentanglement_pct'], 1) if paired else '0'} "
            f"| {fmt(s['disentanglement_chance_pct'], 1) if paired else '0'} | "
            f"{fmt(s['disentanglement_floor_linear_pct'], 1) if paired else '0'} "
            f"| {fmt(s['conditional_speaker_from_emotion_mlp'])} | "
            f"{fmt(s['conditional_disentanglement_pct'], 1) if paired else '0'} |"
        )
    return "\n".join(lines)


def unseen_table(
    summary: dict[tuple, dict], pooled: dict[str, Interval | None], defaults: dict[str, float | None]
) -> str:
    """Per strategy and strength: UAR on held-out speakers, its change paired over folds (the verdict), and at
    the file's strength the pooled-clip bootstrap (clip sampling only: never the verdict)."""
    lines = [
        "| strategy | weight | emotion UAR on unseen speakers | ΔUAR (points), paired over folds | ΔUAR (points), "
        "pooled clips, bootstrap |",
        "|" + " --- |" * 5,
    ]
    points = [
        (strategy, defaults.get(strategy) if strength is None else strength, strength is None, s)
        for (strategy, strength), s in summary.items()
    ]
    for strategy, weight, is_default, s in sorted(points, key=lambda p: (p[0] != BASELINE, p[0], p[1] or 0.0)):
        paired = strategy != BASELINE
        pooled_delta = pooled.get(strategy) if is_default else None
        shown = "—" if weight is None else f"{weight:g}{' (default)' if is_default else ''}"
        lines.append(
            f"| {strategy} | {shown} | {fmt(s['unseen_speaker_emotion_uar'])} | "
            f"{fmt(s['unseen_delta_uar_points'], 1) if paired else '—'} "
            f"| {fmt(pooled_delta, 1) if paired and pooled_delta else '—'} |"
        )
    return "\n".join(lines)


def frontier_table(summary: dict[tuple, dict], knees: dict[str, float | None], defaults: dict[str, float]) -> str:
    lines = [
        "| strategy | weight | val ΔUAR | val D_floor % | test ΔUAR | test D_floor % | test D_info % | |",
        "|" + " --- |" * 8,
    ]
    points = [
        (strategy, defaults.get(strategy) if strength is None else strength, strength is None, s)
        for (strategy, strength), s in summary.items()
        if strategy != BASELINE
    ]
    for strategy, weight, is_default, s in sorted(points, key=lambda p: (p[0], p[1])):
        marks = ["default"] if is_default else []
        if knees.get(strategy) == weight:
            marks.append("**knee (chosen on val)**")
        lines.append(
            f"| {strategy} | {weight:g} | {fmt(s['val_delta_uar_points'], 1)} | "
            f"{fmt(s['val_disentanglement_floor_pct'], 1)} "
            f"| {fmt(s['delta_uar_points'], 1)} | {fmt(s['disentanglement_floor_pct'], 1)} "
            f"| {fmt(s['disentanglement_info_pct'], 1)} | {', '.join(marks)} |"
        )
    return "\n".join(lines)


def targets(
    summary: dict[tuple, dict], unseen: dict[tuple, dict], pooled: dict[str, Interval | None], paper: tuple[str, ...]
) -> list[str]:
    """The targets, each marked met or not from this run's numbers: identity removed at the default strengths
    with emotion held (mean ΔUAR >= -1 point), an interval above 0, by information and by accuracy; and a gain
    on unseen speakers at any strength, with the fold-paired interval as the verdict."""
    defaults = {k[0]: s for k, s in summary.items() if k[1] is None and k[0] != BASELINE}

    def best(names, column: str) -> tuple[str, float]:
        scored = [
            (n, defaults[n][column].mean)
            for n in names
            if n in defaults and defaults[n]["delta_uar_points"].mean >= -1.0 and defaults[n][column].low > 0
        ]
        return max(scored, key=lambda p: p[1]) if scored else ("none qualifies", math.nan)

    def named(result: tuple[str, float]) -> str:
        return result[0] if math.isnan(result[1]) else f"{result[0]}, {result[1]:.1f}%"

    graded_paper, graded_best = best(paper, "disentanglement_info_pct"), best(defaults, "disentanglement_info_pct")
    accuracy_best = best(defaults, "disentanglement_floor_pct")
    over_folds = [
        k[0] if k[1] is None else f"{k[0]} at {k[1]:g}"
        for k, s in unseen.items()
        if k[0] != BASELINE and s["unseen_delta_uar_points"].low > 0
    ]
    over_clips = [n for n, d in pooled.items() if d is not None and n != BASELINE and d.low > 0]
    mark = {True: "met", False: "not met"}
    held = "at the file's strength, mean ΔUAR >= -1 point, interval above 0"
    return [
        f"- Graded: a paper technique ({', '.join(paper)}) removes >= 30% of the removable identity information "
        f"({held}): {mark[graded_paper[1] >= 30]} (best: {named(graded_paper)}).",
        f"- Graded: the best strategy removes >= 50% on the same terms: {mark[graded_best[1] >= 50]} "
        f"(best: {named(graded_best)}).",
        f"- Accuracy: the best strategy removes >= 13% (the paper's figure; D_floor, {held}): "
        f"{mark[accuracy_best[1] >= 13]} (best: {named(accuracy_best)}).",
        "- A strategy raises UAR on unseen speakers with an interval above 0, paired over folds (the verdict: "
        f"training variance included): {mark[bool(over_folds)]}"
        f"{' (' + ', '.join(over_folds) + ')' if over_folds else ''}; over pooled clips (clip sampling only, "
        f"secondary): {mark[bool(over_clips)]}{' (' + ', '.join(over_clips) + ')' if over_clips else ''}.",
    ]


#: The per-fold numbers a speaker-independent protocol reports, as papers name them.
PROTOCOL_METRICS = {"emotion_wa": "WA", "emotion_uar": "UA (UAR)", "emotion_f1": "macro-F1"}


def write_protocol_csv(stats: dict[str, dict], path: Path) -> None:
    """Per strategy: the number of folds, per metric the mean and the standard deviation over folds, and the
    UA change against `none` paired over folds (mean, low, high; empty for `none` itself)."""
    header = ["strategy", "folds"] + [f"{m}_{s}" for m in PROTOCOL_METRICS for s in ("mean", "std")]
    header += [f"delta_uar_points_{s}" for s in ("mean", "low", "high")]
    rows = [
        [strategy, s["folds"], *(v for m in PROTOCOL_METRICS for v in s[m]), *(s["delta_uar_points"] or ("",) * 3)]
        for strategy, s in stats.items()
    ]
    path.write_text(csv_text(header, rows))


def protocol_table(stats: dict[str, dict]) -> str:
    """Mean ± standard deviation over folds, as papers report speaker-independent results, and the UA change
    against `none` paired over folds with its 95% interval."""
    header = ["strategy", "folds", *PROTOCOL_METRICS.values(), "ΔUA vs none, paired over folds (points)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for strategy, s in stats.items():
        cells = " | ".join(f"{s[m][0]:.3f} ± {s[m][1]:.3f}" for m in PROTOCOL_METRICS)
        change = s["delta_uar_points"]
        delta = "—" if change is None else f"{change[0]:+.1f} [{change[1]:+.1f}, {change[2]:+.1f}]"
        lines.append(f"| {strategy} | {s['folds']} | {cells} | {delta} |")
    return "\n".join(lines)


def write_confusion_csv(matrices: dict, labels: list[str], path: Path) -> None:
    """Confusion counts per strategy (rows = true class, columns = predicted), one block per strategy."""
    rows = [
        [strategy, label, *counts.tolist()]
        for strategy, matrix in matrices.items()
        for label, counts in zip(labels, matrix)
    ]
    path.write_text(csv_text(["strategy", "true", *labels], rows))

"""From runs to conclusions: paired differences against `none`, intervals, frontiers, the verdict.

Every change is paired: a strategy's run is compared with the `none` run of the same seed (closed
set) or the same fold (unseen speakers), and the differences are averaged over seeds or folds with
a Student-t interval. A strategy is named best only when its interval excludes the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from avdisentangle.evaluation.metrics import (
    Interval,
    bootstrap_interval,
    disentanglement_pct,
    mean_interval,
    room_disentanglement_pct,
    unweighted_average_recall,
)

BASELINE = "none"
MLP, LINEAR = "probe_speaker_from_emotion_mlp", "probe_speaker_from_emotion_linear"
FLOOR, CHANCE = "floor_speaker_from_emotion_label", "chance_speaker"
INFO, INFO_FLOOR = "speaker_info_bits", "floor_info_bits"
UAR_TOLERANCE_POINTS = 1.0  # "emotion accuracy holds": a mean UAR change no worse than -1 point

#: Per closed-set configuration: the columns averaged over seeds, each with its interval.
CLOSED_SET_SUMMARY = (
    "emotion_uar",
    "delta_uar_points",
    MLP,
    LINEAR,
    FLOOR,
    "conditional_speaker_from_emotion_mlp",
    "disentanglement_floor_pct",
    INFO,
    INFO_FLOOR,
    "disentanglement_info_pct",
    "disentanglement_pct",
    "disentanglement_chance_pct",
    "disentanglement_floor_linear_pct",
    "conditional_disentanglement_pct",
    "val_delta_uar_points",
    "val_disentanglement_floor_pct",
)
UNSEEN_SUMMARY = ("unseen_speaker_emotion_uar", "unseen_delta_uar_points")


def is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def config_key(row: dict) -> tuple[str, float | None]:
    """(strategy, strength): one point of a frontier; strength None is the config file's own."""
    return row["strategy"], None if is_nan(row["strength"]) else row["strength"]


def add_paired_columns(rows: list[dict]) -> None:
    """Fill each run's change against the `none` run of the same seed (closed set) or fold (unseen)."""
    baselines = {
        (r["split"], r["seed"] if r["split"] == "closed_set" else r["fold"]): r
        for r in rows
        if r["strategy"] == BASELINE
    }
    for row in rows:
        base = baselines.get((row["split"], row["seed"] if row["split"] == "closed_set" else row["fold"]))
        if row["split"] == "unseen":
            row["unseen_delta_uar_points"] = points(row, base, "unseen_speaker_emotion_uar")
            continue
        row["delta_uar_points"] = points(row, base, "emotion_uar")
        row["val_delta_uar_points"] = points(row, base, "val_emotion_uar")
        nan = float("nan")
        if base is None:
            for column in (
                "disentanglement_pct",
                "disentanglement_chance_pct",
                "disentanglement_floor_pct",
                "disentanglement_info_pct",
                "disentanglement_floor_linear_pct",
                "conditional_disentanglement_pct",
                "val_disentanglement_floor_pct",
            ):
                row[column] = nan
            continue
        row["disentanglement_pct"] = disentanglement_pct(base[MLP], row[MLP])
        row["disentanglement_chance_pct"] = room_disentanglement_pct(base[MLP], row[MLP], row[CHANCE])
        row["disentanglement_floor_pct"] = room_disentanglement_pct(base[MLP], row[MLP], row[FLOOR])
        row["disentanglement_info_pct"] = room_disentanglement_pct(base[INFO], row[INFO], row[INFO_FLOOR])
        row["disentanglement_floor_linear_pct"] = room_disentanglement_pct(base[LINEAR], row[LINEAR], row[FLOOR])
        row["conditional_disentanglement_pct"] = room_disentanglement_pct(
            base["conditional_speaker_from_emotion_mlp"], row["conditional_speaker_from_emotion_mlp"], row[FLOOR]
        )
        row["val_disentanglement_floor_pct"] = room_disentanglement_pct(
            base["val_" + MLP], row["val_" + MLP], row["val_" + FLOOR]
        )


def points(row: dict, base: dict | None, column: str) -> float:
    """The change of a [0, 1] metric in points (x100) against the baseline row."""
    return float("nan") if base is None else 100.0 * (row[column] - base[column])


def summarise(rows: list[dict], split: str, columns: Iterable[str]) -> dict[tuple, dict[str, Interval]]:
    """Mean and interval of each column per (strategy, strength), over seeds or folds, in run order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["split"] == split:
            groups.setdefault(config_key(row), []).append(row)
    return {
        key: {c: mean_interval(r[c] for r in group) for c in columns} | {"n": len(group)}
        for key, group in groups.items()
    }


def pooled_unseen_delta(outcomes, strategy: str, seed: int = 0) -> Interval | None:
    """UAR change on unseen speakers with every clip's held-out prediction pooled over the folds
    (each speaker is held out once), as a paired bootstrap over clips against `none`."""

    def pooled(name):
        parts = [
            o.test for o in outcomes if o.spec.split == "unseen" and o.spec.strategy == name and o.spec.strength is None
        ]
        if not parts:
            return None
        order = np.argsort(np.concatenate([p.index for p in parts]))
        return tuple(
            np.concatenate([getattr(p, key) for p in parts])[order] for key in ("index", "emotion", "emotion_pred")
        )

    mine, base = pooled(strategy), pooled(BASELINE)
    if mine is None or base is None or not np.array_equal(mine[0], base[0]):
        return None

    def delta(truth, predicted, predicted_base):
        return 100.0 * (unweighted_average_recall(truth, predicted) - unweighted_average_recall(truth, predicted_base))

    return bootstrap_interval(delta, mine[1], mine[2], base[2], seed=seed)


def knee(frontier: dict[tuple, dict[str, Interval]], strategy: str, default_weight: float | None) -> float | None:
    """The strength to use by default, chosen on VALIDATION metrics only: the most floor-normalised
    disentanglement whose mean validation UAR change is no worse than -1 point; if no strength
    holds UAR, the one that loses least. The config file's own strength is one of the candidates."""
    candidates = [
        (default_weight if key[1] is None else key[1], s) for key, s in frontier.items() if key[0] == strategy
    ]
    candidates = [(w, s) for w, s in candidates if w is not None]
    if len(candidates) < 2:
        return None
    holding = [(w, s) for w, s in candidates if s["val_delta_uar_points"].mean >= -UAR_TOLERANCE_POINTS]
    if holding:
        return max(holding, key=lambda p: p[1]["val_disentanglement_floor_pct"].mean)[0]
    return max(candidates, key=lambda p: p[1]["val_delta_uar_points"].mean)[0]


def verdict(summary: dict[tuple, dict[str, Interval]]) -> tuple[str | None, str]:
    """The best strategy at its default strength, or None, and the sentence that says why.

    Named only when its floor-normalised disentanglement interval excludes 0 (the baseline) while
    emotion holds (mean UAR change no worse than -1 point)."""
    defaults = {key[0]: s for key, s in summary.items() if key[1] is None and key[0] != BASELINE}
    holding = {k: s for k, s in defaults.items() if s["delta_uar_points"].mean >= -UAR_TOLERANCE_POINTS}
    distinct = {k: s for k, s in holding.items() if s["disentanglement_floor_pct"].low > 0}
    if not distinct:
        return None, (
            "No strategy is distinguishable from `none` at this size: no strategy that keeps emotion UAR within "
            f"{UAR_TOLERANCE_POINTS:g} point has a floor-normalised disentanglement interval above 0."
        )
    best = max(distinct, key=lambda k: distinct[k]["disentanglement_floor_pct"].mean)
    s = distinct[best]
    return best, (
        f"**Best strategy: {best}**: {fmt(s['disentanglement_floor_pct'], 1)}% of the removable identity removed "
        f"by accuracy and {fmt(s['disentanglement_info_pct'], 1)}% by information (MLP probe, floor-normalised) "
        f"at {fmt(s['delta_uar_points'], 1)} UAR points versus `none` (paired over {s['n']} seeds)."
    )


def fmt(interval: Interval, digits: int = 3) -> str:
    """'m [low, high]' (or 'm' when there is no interval)."""
    if is_nan(interval.mean):
        return "n/a"
    if is_nan(interval.low):
        return f"{interval.mean:.{digits}f}"
    return f"{interval.mean:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"

"""What identity each strategy removes at a fixed emotion cost, read off its frontier over strengths.

A default strength is one point; a strategy is its whole curve. For each strategy the seed-mean
points (ΔUAR, D) over its strengths, joined in order of strength and starting from `none` at
(0, 0), are read at an emotion budget b (ΔUAR = -1, -2, -5 points): the most identity removed at
any point that costs no more than b, or where a segment between two strengths crosses b (linear
interpolation: strength is continuous, the grid is not). When even the strongest strength costs less
than b, the curve does not reach the budget and the value is a lower bound (marked `>=`).

The slope is identity removed per UAR point paid: a least-squares line through the origin over the
strengths that cost emotion. Intervals are percentile bootstraps over seeds, resampling whole seeds
so that each run stays paired with its own `none` (Student t does not apply to a maximum).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdisentangle.evaluation.analysis import BASELINE, fmt, is_nan
from avdisentangle.evaluation.metrics import CONFIDENCE, Interval
from avdisentangle.evaluation.tables import csv_text

BUDGETS = (-1.0, -2.0, -5.0)  # ΔUAR points: what "emotion accuracy holds" may cost, at three prices
MEASURES = {"disentanglement_info_pct": "D_info", "disentanglement_floor_pct": "D_floor"}
RESAMPLES = 1000


@dataclass(frozen=True)
class Tradeoff:
    """One strategy's reading of its frontier, per measure: identity removed at each budget, and the slope."""

    strengths: int
    seeds: int
    removed: dict[str, dict[float, Interval]]  # measure -> budget -> % removed
    reached: dict[str, dict[float, bool]]  # measure -> budget -> whether the curve costs that much
    slope: dict[str, Interval]  # measure -> % removed per UAR point


def removed_at(costs: Sequence[float], removed: Sequence[float], budget: float) -> tuple[float, bool]:
    """The most removed on the curve (0, 0) -> (costs[i], removed[i]) at a ΔUAR no worse than `budget`,
    and whether the curve reaches the budget at all. `costs` are ΔUAR in points, in order of strength."""
    xs, ys = [0.0, *costs], [0.0, *removed]
    best = max(y for x, y in zip(xs, ys) if x >= budget)
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if (x0 - budget) * (x1 - budget) <= 0 and x0 != x1:
            best = max(best, y0 + (budget - x0) / (x1 - x0) * (y1 - y0))
    return best, min(xs) <= budget


def slope_through_origin(costs: Sequence[float], removed: Sequence[float]) -> float:
    """% removed per UAR point paid, fitted over the strengths that cost emotion (nan when none does)."""
    paid = [(-c, r) for c, r in zip(costs, removed) if c < 0]
    if not paid:
        return math.nan
    return sum(c * r for c, r in paid) / sum(c * c for c, _ in paid)


def strategy_curves(rows: list[dict], defaults: dict[str, float | None]) -> dict[str, dict[float, dict[int, dict]]]:
    """Closed-set runs as strategy -> strength -> seed -> row (the default strength under its value)."""
    curves: dict[str, dict[float, dict[int, dict]]] = {}
    for row in rows:
        if row["split"] != "closed_set" or row["strategy"] == BASELINE:
            continue
        strength = defaults.get(row["strategy"]) if is_nan(row["strength"]) else row["strength"]
        if strength is not None:
            curves.setdefault(row["strategy"], {}).setdefault(float(strength), {})[row["seed"]] = row
    return curves


def read_curve(by_strength: dict[float, dict[int, dict]], seeds: Sequence[int], column: str):
    """Seed-mean (ΔUAR, D) per strength over `seeds` (repeats allowed: a bootstrap draw), in order of strength."""
    costs, removed = [], []
    for strength in sorted(by_strength):
        runs = [by_strength[strength][s] for s in seeds if s in by_strength[strength]]
        pairs = [(r["delta_uar_points"], r[column]) for r in runs]
        pairs = [p for p in pairs if not (is_nan(p[0]) or is_nan(p[1]))]
        if pairs:
            costs.append(float(np.mean([p[0] for p in pairs])))
            removed.append(float(np.mean([p[1] for p in pairs])))
    return costs, removed


def tradeoffs(rows: list[dict], defaults: dict[str, float | None], seed: int = 0) -> dict[str, Tradeoff]:
    """Per strategy with at least two strengths: identity removed at each budget and the slope, with
    bootstrap intervals over seeds."""
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - CONFIDENCE) / 2
    result = {}
    for strategy, by_strength in strategy_curves(rows, defaults).items():
        seeds = sorted({s for runs in by_strength.values() for s in runs})
        if len(by_strength) < 2:
            continue
        draws = [rng.choice(seeds, size=len(seeds)) for _ in range(RESAMPLES)] if len(seeds) > 1 else []
        removed, reached, slope = {}, {}, {}
        for column in MEASURES:
            curve = read_curve(by_strength, seeds, column)
            if not curve[0]:
                continue
            boot = [read_curve(by_strength, draw, column) for draw in draws]
            removed[column], reached[column] = {}, {}
            for budget in BUDGETS:
                value, reached[column][budget] = removed_at(*curve, budget)
                removed[column][budget] = interval(value, [removed_at(*b, budget)[0] for b in boot if b[0]], tail)
            boot_slopes = [slope_through_origin(*b) for b in boot if b[0]]
            slope[column] = interval(slope_through_origin(*curve), boot_slopes, tail)
        result[strategy] = Tradeoff(len(by_strength), len(seeds), removed, reached, slope)
    return result


def interval(value: float, draws: list[float], tail: float) -> Interval:
    values = np.asarray([d for d in draws if not math.isnan(d)], dtype=float)
    if len(values) < 2:
        return Interval(value, math.nan, math.nan)
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def tradeoff_table(results: dict[str, Tradeoff]) -> str:
    """Identity removed at each emotion budget, by information and by accuracy, and the slopes."""
    header = ["strategy", "strengths x seeds"]
    for name in MEASURES.values():
        header += [f"{name} % at ΔUAR {b:g}" for b in BUDGETS] + [f"{name} % per UAR point"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for strategy, t in results.items():
        cells = [strategy, f"{t.strengths} x {t.seeds}"]
        for column in MEASURES:
            if column not in t.removed:
                cells += ["n/a"] * (len(BUDGETS) + 1)
                continue
            for budget in BUDGETS:
                mark = "" if t.reached[column][budget] else ">= "
                cells.append(mark + fmt(t.removed[column][budget], 1))
            cells.append(fmt(t.slope[column], 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tradeoff_csv(results: dict[str, Tradeoff], path: Path) -> None:
    """One row per strategy, measure and budget (budget blank: the slope), with the interval and whether reached."""
    rows = []
    for strategy, t in results.items():
        for column in t.removed:
            for budget in BUDGETS:
                rows.append([strategy, column, budget, *t.removed[column][budget], t.reached[column][budget]])
            rows.append([strategy, column.replace("_pct", "_pct_per_uar_point"), "", *t.slope[column], ""])
    path.write_text(csv_text(["strategy", "measure", "delta_uar_budget", "mean", "low", "high", "reached"], rows))

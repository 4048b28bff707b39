"""The frontier figure: what emotion accuracy a strategy pays for the identity it removes, over its strengths."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.lines import Line2D

from avdisentangle.evaluation.figures import colour, new_figure, save_png


def plot_frontier(panels: Mapping[str, Mapping[str, Sequence[tuple]]], path, baseline_uar=None) -> Path:
    """Emotion UAR against floor-normalised disentanglement: one panel per reading of the identity removed
    (`panels` maps its x-axis label, e.g. by accuracy and by information, to its curves), one curve per
    strategy over its strengths, the UAR axis shared.

    `panels[xlabel][strategy]` holds `(label, x, y, is_default)` points, x and y each `(mean, low, high)`
    (95% intervals over seeds; nan bounds draw no bar), in the order the line joins them. The
    default strength is drawn larger; `baseline_uar` (mean, low, high) is `none`'s UAR band.
    """
    if not any(points for curves in panels.values() for points in curves.values()):
        raise ValueError("no frontier points to draw")
    fig = new_figure(5.5 * len(panels) + 2.5, 5.5)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (xlabel, curves) in zip(axes, panels.items()):
        _frontier_panel(ax, curves, baseline_uar)
        ax.set_xlabel(xlabel)
    low, high = axes[0].get_ylim()
    axes[0].set_ylim(max(low, 0.0), min(high, 1.02))  # UAR lives in [0, 1], whatever a wide interval says
    axes[0].set_ylabel("emotion UAR (test)")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", linestyle="", markersize=9, color="grey", markeredgecolor="black"))
    labels.append("default strength")
    style = dict(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, title="strategy (weight)")
    axes[-1].legend(handles, labels, **style)
    fig.suptitle("Frontier: emotion accuracy against removed identity (means, 95% intervals over seeds)")
    return save_png(fig, path)


def baseline_band(ax, baseline_uar) -> None:
    """`none`'s mean UAR as a dashed line in its 95% band (mean, low, high; no band without bounds)."""
    if baseline_uar is None:
        return
    mean, low, high = baseline_uar
    if not (math.isnan(low) or math.isnan(high)):
        ax.axhspan(low, high, color="grey", alpha=0.15, zorder=0)
    ax.axhline(mean, color="grey", linestyle="--", linewidth=1.2, zorder=1, label="none (95% band)")


def _frontier_panel(ax, curves: Mapping[str, Sequence[tuple]], baseline_uar) -> None:
    """One panel: `none`'s UAR band, a line per strategy through its points and their bars, 0 and the floor (100%)."""
    cmap = colormaps["tab10"]
    baseline_band(ax, baseline_uar)
    for index, (strategy, points) in enumerate(curves.items()):
        tint = colour(cmap, index + 1)
        xs = np.array([p[1] for p in points], dtype=float)
        ys = np.array([p[2] for p in points], dtype=float)
        ax.plot(xs[:, 0], ys[:, 0], "-", color=tint, linewidth=1.5, zorder=2, label=strategy)
        for (label, _, _, is_default), x, y in zip(points, xs, ys):
            xerr = None if np.isnan(x[1:]).any() else [[x[0] - x[1]], [x[2] - x[0]]]
            yerr = None if np.isnan(y[1:]).any() else [[y[0] - y[1]], [y[2] - y[0]]]
            ax.errorbar(
                x[0],
                y[0],
                xerr=xerr,
                yerr=yerr,
                fmt="o",
                markersize=9 if is_default else 5,
                color=tint,
                markeredgecolor="black" if is_default else tint,
                ecolor=tint,
                elinewidth=1,
                capsize=3,
                zorder=3,
            )
            ax.annotate(label, (x[0], y[0]), xytext=(4, 4), textcoords="offset points", fontsize=8, color=tint)
    ax.axvline(0, color="grey", linewidth=0.8, zorder=1)
    ax.axvline(100, color="grey", linewidth=0.8, linestyle=":", zorder=1)
    ax.text(100, 0.02, " floor", transform=ax.get_xaxis_transform(), color="grey", fontsize=9, ha="left", va="bottom")
    ax.grid(alpha=0.3)


def plot_unseen_by_strength(curves: Mapping[str, Sequence[tuple]], path, baseline_uar=None) -> Path:
    """UAR on held-out speakers against strength, one line per strategy: does removing identity help new
    people, and at which strength does it peak? `curves[strategy]` holds `(weight, (mean, low, high))`
    (95% intervals over folds); `baseline_uar` is `none`'s band."""
    if not any(curves.values()):
        raise ValueError("no unseen-speaker points to draw")
    fig = new_figure(7.5, 5.0)
    ax = fig.subplots()
    cmap = colormaps["tab10"]
    baseline_band(ax, baseline_uar)
    for index, (strategy, points) in enumerate(curves.items()):
        tint = colour(cmap, index + 1)
        weights = np.array([p[0] for p in points], dtype=float)
        uar = np.array([p[1] for p in points], dtype=float)
        order = np.argsort(weights)
        weights, uar = weights[order], uar[order]
        bars = None if np.isnan(uar[:, 1:]).any() else [uar[:, 0] - uar[:, 1], uar[:, 2] - uar[:, 0]]
        ax.errorbar(weights, uar[:, 0], yerr=bars, fmt="o-", color=tint, capsize=3, label=strategy, zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("strategy weight (log scale)")
    ax.set_ylabel("emotion UAR on unseen speakers")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("Unseen speakers: emotion UAR against strength (means, 95% intervals over folds)")
    return save_png(fig, path)

"""Report figures: embedding maps, confusion matrices, training curves, SSL layer weights (the frontier:
`frontier_plot.py`).

Each draws a pyplot-free figure (`figures.py`), writes one PNG, creating parent folders, and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from avdisentangle.evaluation.figures import colour, new_figure, save_png

PROJECTION_METHODS = ("tsne", "pca")
MAX_SPEAKER_LEGEND = 12


def _as_float(value) -> float | None:
    """A metric value from a JSON/CSV row as a float, or None when it is missing, blank or NaN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _check_method(method: str) -> None:
    if method not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {', '.join(PROJECTION_METHODS)}")


def project(z: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D map of standardised embeddings (so that no single large-scale dimension dominates).

    Deterministic for a given `seed`, which is what lets both rows of an embedding figure share one map.
    """
    _check_method(method)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 3:
        raise ValueError(f"need a (n >= 3, dims) array of embeddings, got shape {z.shape}")
    std = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(z)
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    tsne = TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(z) - 1) / 3), random_state=seed)
    # One thread: t-SNE's OpenMP gradient loop spin-waits when the cores are shared (training runs beside
    # it); on 2 busy cores 500 x 64 points took 15-40 s with the default threads and ~1 s with one.
    with threadpool_limits(limits=1):
        return tsne.fit_transform(z)


def _scatter_by(ax, xy: np.ndarray, ids: np.ndarray, cmap: Colormap) -> None:
    size = float(np.clip(4000 / len(xy), 5, 24))
    ax.scatter(
        xy[:, 0], xy[:, 1], c=[colour(cmap, int(i)) for i in ids], s=size, alpha=0.8, linewidths=0, rasterized=True
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _category_handles(present: Iterable[int], names: Sequence[str], cmap: Colormap) -> list[Line2D]:
    return [
        Line2D([], [], marker="o", linestyle="", markersize=7, color=colour(cmap, i), label=names[i])
        for i in sorted(present)
    ]


def _embedding_legends(axes, emotions: set[int], speakers: set[int], emotion_names, speaker_names) -> None:
    """Legends right of the last column; over MAX_SPEAKER_LEGEND speakers only their count, since more
    than a dozen qualitative colours cannot be told apart."""
    style = dict(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=9)
    axes[0, -1].legend(handles=_category_handles(emotions, emotion_names, colormaps["tab10"]), title="emotion", **style)
    if len(speakers) <= MAX_SPEAKER_LEGEND:
        handles = _category_handles(speakers, speaker_names, colormaps["tab20"])
        axes[1, -1].legend(handles=handles, title="speaker", ncols=1 + len(speakers) // 7, **style)
    else:
        note = f"{len(speakers)} speakers\n(colours repeat\nafter 20)"
        axes[1, -1].text(1.04, 0.5, note, transform=axes[1, -1].transAxes, va="center", ha="left", fontsize=9)


def plot_embeddings(
    panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    emotion_names: list[str],
    speaker_names: list[str],
    path,
    method: str = "tsne",
    seed: int = 0,
) -> Path:
    """One column per `(title, z, emotion_ids, speaker_ids)` panel: the same 2-D map coloured by emotion
    (top) and by speaker (bottom). A disentangled z_emotion clusters by emotion and mixes speakers.

    Name the model and the embedding in `title`, e.g. "none: z_emotion"; subtitles append "by emotion"/"by
    speaker". Speakers get a legend up to 12 of them; beyond that only their count is noted, since more
    than a dozen qualitative colours cannot be told apart.
    """
    _check_method(method)
    if not panels:
        raise ValueError("need at least one panel")  # checked before any (slow) projection
    emotion_cmap, speaker_cmap = colormaps["tab10"], colormaps["tab20"]
    method_name, axis_name = {"tsne": ("t-SNE", "t-SNE"), "pca": ("PCA", "PC")}[method]

    fig = new_figure(4.2 * len(panels) + 1.8, 8.0)
    axes = fig.subplots(2, len(panels), squeeze=False)
    emotions_seen: set[int] = set()
    speakers_seen: set[int] = set()
    for column, (title, z, emotion_ids, speaker_ids) in enumerate(panels):
        emotion_ids, speaker_ids = np.asarray(emotion_ids, dtype=int), np.asarray(speaker_ids, dtype=int)
        if not len(z) == len(emotion_ids) == len(speaker_ids):
            raise ValueError(f"panel {title!r}: z, emotion_ids and speaker_ids differ in length")
        xy = project(z, method, seed)
        for row, (ids, cmap, what) in enumerate(
            [(emotion_ids, emotion_cmap, "emotion"), (speaker_ids, speaker_cmap, "speaker")]
        ):
            ax = axes[row, column]
            _scatter_by(ax, xy, ids, cmap)
            ax.set_title(f"{title} by {what}", fontsize=11)
            ax.set_xlabel(f"{axis_name} 1", fontsize=9)
            ax.set_ylabel(f"{axis_name} 2", fontsize=9)
        emotions_seen.update(np.unique(emotion_ids).tolist())
        speakers_seen.update(np.unique(speaker_ids).tolist())

    _embedding_legends(axes, emotions_seen, speakers_seen, emotion_names, speaker_names)
    fig.suptitle(f"{method_name} of standardised embeddings (seed {seed})", fontsize=12)
    return save_png(fig, path)


def _row_normalise(matrix: np.ndarray) -> np.ndarray:
    """Recall per true class; a class with no examples gets a row of zeros rather than NaN."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrices(matrices: dict[str, np.ndarray], labels: list[str], path) -> Path:
    """One row-normalised confusion matrix per strategy (rows = true class, so the diagonal is recall),
    on a shared 0..1 colour scale so that strategies compare at a glance."""
    if not matrices:
        raise ValueError("need at least one confusion matrix")
    n = len(labels)
    for strategy, matrix in matrices.items():
        if np.shape(matrix) != (n, n):
            raise ValueError(f"{strategy!r}: confusion matrix of shape {np.shape(matrix)}, expected ({n}, {n})")
    columns = min(3, math.ceil(math.sqrt(len(matrices))))  # 4 -> 2x2, not 3+1 with an empty slot
    grid_rows = math.ceil(len(matrices) / columns)
    cell = max(3.6, 0.55 * n + 1.2)
    fig = new_figure(cell * columns + 1.0, cell * grid_rows + 0.4)
    axes = fig.subplots(grid_rows, columns, squeeze=False)
    rotation = 45 if max(len(label) for label in labels) > 3 else 0
    cell_font = 9 if n <= 8 else 7
    used = list(axes.flat[: len(matrices)])
    for ax, (strategy, matrix) in zip(used, matrices.items()):
        recall = _row_normalise(matrix)
        image = ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), value in np.ndenumerate(recall):
            colour = "white" if value > 0.6 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=cell_font, color=colour)
        ax.set_xticks(range(n), labels, rotation=rotation, ha="right" if rotation else "center", rotation_mode="anchor")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(strategy)
    for ax in axes.flat[len(matrices) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=used, shrink=0.8, label="recall (row-normalised)")
    return save_png(fig, path)


def plot_training_curves(
    histories: dict[str, list[dict]],
    path,
    keys: Sequence[str] = ("val/emotion/uar", "val/speaker/uar"),
) -> Path:
    """Validation metrics per epoch, one panel per metric and one line per strategy, from metrics rows
    (e.g. a Lightning `metrics.csv`: an "epoch" column, blank cells where a row logs something else)."""
    if not keys:
        raise ValueError("need at least one metric key")
    cmap = colormaps["tab10"]
    fig = new_figure(4.8 * len(keys) + 1.8, 4.2)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    plotted: dict[str, Line2D] = {}
    for ax, key in zip(axes, keys):
        for index, (strategy, history) in enumerate(histories.items()):
            points = _epoch_series(history, key)
            if points:
                epochs, values = zip(*points)
                (plotted[strategy],) = ax.plot(
                    epochs, values, marker="o", markersize=3, linewidth=1.5, color=colour(cmap, index)
                )
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if plotted:
        style = dict(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, title="strategy")
        axes[-1].legend(list(plotted.values()), list(plotted.keys()), **style)
    return save_png(fig, path)


def _epoch_series(history: Iterable[Mapping], key: str) -> list[tuple[float, float]]:
    """(epoch, value) pairs sorted by epoch, skipping rows where either is blank."""
    points = []
    for row in history:
        epoch, value = _as_float(row.get("epoch")), _as_float(row.get(key))
        if epoch is not None and value is not None:
            points.append((epoch, value))
    return sorted(points)


def plot_layer_weights(weights: Mapping[str, np.ndarray], path) -> Path:
    """The SSL encoder's softmax layer weights at the end of training, one line per strategy, against the uniform
    weights it started from: which layers of the speech model the tasks read (layer 0: the features before the
    first transformer layer)."""
    if not weights:
        raise ValueError("need the layer weights of at least one strategy")
    cmap = colormaps["tab10"]
    fig = new_figure(6.6, 4.0)
    ax = fig.subplots()
    for index, (strategy, values) in enumerate(weights.items()):
        ax.plot(range(len(values)), values, marker="o", markersize=4, color=colour(cmap, index), label=strategy)
    layers = max(len(values) for values in weights.values())
    ax.axhline(1.0 / layers, color="grey", linestyle="--", linewidth=1, label="uniform (start)")
    ax.set_xlabel("layer")
    ax.set_ylabel("softmax weight")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return save_png(fig, path)

"""Report figures: each writes a readable, non-blank PNG; embedding maps share one projection per column."""

from __future__ import annotations

import warnings

import matplotlib.image
import numpy as np
import pytest

from avdisentangle.evaluation import plots
from avdisentangle.evaluation.frontier_plot import plot_frontier

EMOTION_NAMES = ["ANG", "HAP", "SAD"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_readable_png(path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.05, "image looks blank"


def clusters(num_speakers: int = 4, per_cell: int = 8, dims: int = 16, seed: int = 0):
    """Embeddings with an emotion cluster and a weaker speaker offset: 3 emotions x num_speakers."""
    rng = np.random.default_rng(seed)
    emotion_centres = rng.normal(scale=4.0, size=(len(EMOTION_NAMES), dims))
    speaker_centres = rng.normal(scale=1.5, size=(num_speakers, dims))
    emotion, speaker = np.meshgrid(np.arange(len(EMOTION_NAMES)), np.arange(num_speakers), indexing="ij")
    emotion = np.repeat(emotion.ravel(), per_cell)
    speaker = np.repeat(speaker.ravel(), per_cell)
    z = emotion_centres[emotion] + speaker_centres[speaker] + rng.normal(size=(len(emotion), dims))
    return z, emotion, speaker


def speaker_names(n: int) -> list[str]:
    return [f"spk{i:02d}" for i in range(n)]


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_plot_embeddings_writes_png(tmp_path, method):
    z, emotion, speaker = clusters()
    panels = [("none: z_emotion", z, emotion, speaker), ("hsic: z_emotion", z[:, ::-1] * 2, emotion, speaker)]
    path = plots.plot_embeddings(panels, EMOTION_NAMES, speaker_names(4), tmp_path / "sub" / "emb.png", method=method)
    assert path == tmp_path / "sub" / "emb.png"
    assert_readable_png(path)


def test_plot_embeddings_many_speakers(tmp_path):
    z, emotion, speaker = clusters(num_speakers=15, per_cell=3)
    path = plots.plot_embeddings([("none: z_emotion", z, emotion, speaker)], EMOTION_NAMES, speaker_names(15),
                                 tmp_path / "many.png", method="pca")
    assert_readable_png(path)


def test_invalid_method_names_choices(tmp_path):
    z, emotion, speaker = clusters()
    with pytest.raises(ValueError, match="tsne.*pca"):
        plots.plot_embeddings([("x", z, emotion, speaker)], EMOTION_NAMES, speaker_names(4), tmp_path / "x.png", "umap")
    with pytest.raises(ValueError, match="tsne.*pca"):
        plots.project(z, "umap")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_project_is_deterministic(method):
    z, _, _ = clusters()
    first = plots.project(z, method, seed=3)
    assert first.shape == (len(z), 2)
    np.testing.assert_array_equal(first, plots.project(z, method, seed=3))


def test_both_rows_of_a_column_share_one_projection(tmp_path, monkeypatch):
    calls = []
    original = plots.project

    def spy(z, method="tsne", seed=0):
        calls.append(len(z))
        return original(z, method, seed)

    monkeypatch.setattr(plots, "project", spy)
    z, emotion, speaker = clusters()
    panels = [("a", z, emotion, speaker), ("b", z[:30], emotion[:30], speaker[:30])]
    plots.plot_embeddings(panels, EMOTION_NAMES, speaker_names(4), tmp_path / "e.png", method="pca")
    assert calls == [len(z), 30]  # one projection per column, reused by its emotion and speaker rows


def test_plot_frontier(tmp_path):
    nan = float("nan")
    curves = {
        "grl": [("0.03", (5, -2, 12), (0.80, 0.75, 0.85), False), ("0.3", (20, 10, 30), (0.78, 0.74, 0.82), True)],
        "hsic": [("1", (40, nan, nan), (0.7, nan, nan), True)],  # one seed: no bars
    }
    panels = {"by accuracy": curves, "by information": {"grl": curves["grl"][:1]}}
    path = plot_frontier(panels, tmp_path / "sub" / "frontier.png", baseline_uar=(0.8, 0.77, 0.83))
    assert_readable_png(path)
    one_panel = plot_frontier({"by accuracy": curves}, tmp_path / "one.png")
    (two_high, two_wide), (one_high, one_wide) = (matplotlib.image.imread(p).shape[:2] for p in (path, one_panel))
    assert two_wide > 1.5 * one_wide and two_high == pytest.approx(one_high, rel=0.1)  # a second panel beside it


def test_plot_frontier_without_points_raises(tmp_path):
    with pytest.raises(ValueError, match="no frontier points"):
        plot_frontier({"by accuracy": {"grl": []}, "by information": {}}, tmp_path / "f.png")


def test_plot_confusion_matrices_zero_row_no_warnings(tmp_path):
    with_zero_row = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
    matrices = {"none": np.array([[8, 1, 1], [2, 6, 2], [0, 1, 9]]), "hsic": with_zero_row}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plots.plot_confusion_matrices(matrices, EMOTION_NAMES, tmp_path / "cm.png")
    assert_readable_png(path)
    recall = plots._row_normalise(with_zero_row)
    np.testing.assert_allclose(recall[1], 0.0)
    np.testing.assert_allclose(recall.sum(axis=1), [1.0, 0.0, 1.0])


def test_plot_confusion_matrices_checks_shape(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        plots.plot_confusion_matrices({"none": np.eye(2)}, EMOTION_NAMES, tmp_path / "cm.png")


def test_plot_training_curves_skips_blank_cells(tmp_path):
    def history(offset):
        rows = []
        for epoch in range(6):
            rows.append({"epoch": str(epoch), "step": str(epoch * 10), "train/loss": "1.0",
                         "val/emotion/uar": "", "val/speaker/uar": ""})
            emotion_uar, speaker_uar = 0.3 + offset + 0.05 * epoch, 0.9 - offset * epoch
            rows.append({"epoch": str(epoch), "step": str(epoch * 10 + 9), "train/loss": "",
                         "val/emotion/uar": str(emotion_uar), "val/speaker/uar": str(speaker_uar)})
        return rows

    path = plots.plot_training_curves({"none": history(0.0), "hsic": history(0.05)}, tmp_path / "curves.png")
    assert_readable_png(path)

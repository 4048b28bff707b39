"""Figures drawn without `pyplot` and written as PNGs.

Every figure is a `matplotlib.figure.Figure` with an Agg canvas attached, never drawn through `pyplot`:
no global backend switch, no display needed, and no figure registry to leak into (the figure is freed as
soon as it is saved).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

DPI = 120


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure that can render PNGs on a headless machine."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path) -> Path:
    """The figure as a PNG at `path` (parent folders created), then freed; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    fig.clear()
    return path


def colour(cmap: Colormap, index: int):
    """Qualitative colours, cycling once the colormap runs out (tab10 has 10, tab20 has 20)."""
    return cmap(index % cmap.N)

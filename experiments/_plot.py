"""PNG figures of the experiments, drawn with matplotlib's Agg backend.

Two kinds of panel, laid out in one row: 2-D latent clouds over the prior's 1-, 2- and 3-sigma
circles (paper Fig. 2, 3) and line charts of a few series (Fig. 5).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = ["C0", "C3", "C2", "C1", "C4", "C5"]  # tab10 blue, red, green, orange, purple, brown
DPI = 120


def _finish(fig: plt.Figure, path: Path, title: str, legend: list[str], ls: str = "") -> Path:
    """Title, a legend below the panels (markers, joined by lines if ls="-"), save as PNG and close."""
    fig.suptitle(title)
    if legend:
        handles = [plt.Line2D([], [], ls=ls, marker="o", color=COLOURS[k % len(COLOURS)], label=name)
                   for k, name in enumerate(legend)]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def scatter_panels(panels: list[tuple[str, np.ndarray, np.ndarray | None]], path: Path, title: str,
                   legend: list[str] | None = None, radius: float = 4.0, max_points: int = 3000) -> Path:
    """Latent clouds in [-radius, radius]^2, one panel each, over the N(0, I_2) circles (unlabelled points grey).

    Args:
        panels: (title, points (N, 2), labels (N,) ints or None) per panel.
        path: PNG file to write.
        title: figure title.
        legend: names of the label values 0, 1, ...
        radius: half-width of every panel's fixed axis range.
        max_points: a seeded subsample of at most this many points is drawn per panel.

    Returns:
        path.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 4.0), squeeze=False,
                             layout="constrained")
    rs = np.random.RandomState(0)
    for ax, (name, z, labels) in zip(axes[0], panels):
        for r in (1, 2, 3):  # the prior's 1-, 2- and 3-sigma circles
            ax.add_patch(plt.Circle((0, 0), r, fill=False, color="0.67", lw=0.8))
        z = np.asarray(z, dtype=float)  # (N, 2)
        labels = None if labels is None else np.asarray(labels)  # (N,)
        keep = rs.permutation(len(z))[:max_points]
        colour = "0.45" if labels is None else [COLOURS[int(k) % len(COLOURS)] for k in labels[keep]]
        ax.scatter(z[keep, 0], z[keep, 1], s=3, c=colour, linewidths=0)
        ax.set(xlim=(-radius, radius), ylim=(-radius, radius), aspect="equal", xlabel="$z_1$", ylabel="$z_2$")
        ax.set_title(name, fontsize=9)
    return _finish(fig, path, title, legend or [])


def line_panels(panels: list[tuple[str, str, list[tuple[str, list[float], list[float]]]]], path: Path,
                title: str) -> Path:
    """Line charts with shared series colours; the legend names the series of the first panel.

    Args:
        panels: (title, x-axis label, [(series name, xs, ys), ...]) per panel. Points whose y is
            None or not finite are left out.
        path: PNG file to write.
        title: figure title.

    Returns:
        path.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False,
                             layout="constrained")
    for ax, (name, xlabel, series) in zip(axes[0], panels):
        for k, (_, xs, ys) in enumerate(series):
            xy = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
            if xy:
                ax.plot(*zip(*xy), "-o", ms=4, color=COLOURS[k % len(COLOURS)])
        if not ax.lines:
            ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center")
            ax.set(xticks=[], yticks=[])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    return _finish(fig, path, title, [s[0] for s in panels[0][2]] if panels else [], ls="-")

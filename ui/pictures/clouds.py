"""The landing view's picture of the pretrained demo's latents, drawn ahead of time with matplotlib (no pyplot,
so no global figure state). The live clouds and fit curves are drawn in the browser by the explorer component
(ui/components/latent_cloud) from arrays, not pictures.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from ui.pictures.grids import CLASS


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG, zlib level 1: a few % larger than the default and several times faster to encode."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def prior_axes(ax, lim: float) -> None:
    """The prior N(0, I_2): circles at ||z|| = 1, 2, 3, labelled, on square axes of half-width lim."""
    t = np.linspace(0, 2 * np.pi, 121)
    for r in (1, 2, 3):
        ax.plot(r * np.cos(t), r * np.sin(t), color="#999999", lw=0.8, zorder=1)
        ax.text(r * 0.72, r * 0.72, f"{r}σ", color="#777777", fontsize=8, zorder=1)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=8)
    ax.grid(color="#eeeeee", lw=0.6)


def cloud_png(z: np.ndarray, lim: float, title: str) -> bytes:
    """One cloud of latents over the prior's labelled circles: the pretrained demo's picture on the landing
    view, drawn ahead of time (`python -m scripts.make_pretrained preview-png`)."""
    fig = Figure(figsize=(4.6, 4.8), dpi=100)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.07)
    ax = fig.subplots()
    prior_axes(ax, lim)
    ax.scatter(z[:, 0], z[:, 1], s=5, c=CLASS[0], alpha=0.7, linewidths=0, zorder=3)
    ax.set_title(title, fontsize=10, loc="left")
    return figure_png(fig)

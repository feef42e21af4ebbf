"""The landing view's picture of the pretrained demo, drawn at packaging time (scripts/make_pretrained.py): the
model's own q(z^K) over the prior N(0, I), optionally with the persistent chains as a second layer."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ui.pictures.clouds import figure_png, prior_axes
from ui.pictures.grids import CLASS

CHAINS = "#b0b0b0"


def landing_png(q: np.ndarray, lim: float, title: str, chains: np.ndarray | None = None,
                legend: tuple[str, str] = ("q(z^K): K steps from noise", "persistent chains")) -> bytes:
    """q (m, 2) as dots over the prior's circles; `chains` (m', 2), if given, as grey dots beneath them."""
    fig = Figure(figsize=(4.6, 4.8), dpi=100)  # the size of the picture it replaced
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.07)
    ax = fig.subplots()
    prior_axes(ax, lim)
    if chains is not None:
        ax.scatter(chains[:, 0], chains[:, 1], s=5, c=CHAINS, alpha=0.6, linewidths=0, zorder=2, label=legend[1])
    ax.scatter(q[:, 0], q[:, 1], s=5, c=CLASS[0], alpha=0.7, linewidths=0, zorder=3, label=legend[0])
    ax.legend(loc="lower left", fontsize=8, markerscale=2.5, framealpha=0.9)
    ax.set_title(title, fontsize=10, loc="left")
    return figure_png(fig)

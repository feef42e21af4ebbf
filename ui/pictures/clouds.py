"""PNG pictures of latent clouds and fit curves, drawn with matplotlib on the server (no pyplot, so no global
figure state): the Train view, Latent & OT, the landing view's demo picture.

Pictures, not a chart library in the browser: an image whose bytes change keeps the old picture until the new
one is decoded, so a live view never blanks between redraws, and a fresh browser has no library to evaluate
(plotly.js held its main thread for 1.4-2 s the first time a view drew a chart, and a click then waited;
benchmarks/app/app_cold_start.md).
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ui.pictures.grids import CLASS

GHOST, ARROW, RUNS = "#b0b0b0", "#303030", {"ours": "#1f77b4", "ABP": "#d62728"}


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


class Clouds:
    """q(z^K) of ours coloured by class, with the last correction (its before-cloud as a ghost and lines from
    each z_hat_i to where Eq. 10 moved it), and ABP's cloud beside it on identical axes.

    The axes, prior circles, titles and legend are drawn once (`key` says what they depend on); each `png`
    restores that background and draws only the points and lines (matplotlib's blitting), about five times
    faster than drawing the whole figure. One instance per browser session: a Figure is not thread-safe.
    """

    def __init__(self, lim: float, classes: tuple[int, ...], with_abp: bool, prior_xy: np.ndarray | None = None,
                 titles: tuple[str, str] = ("ours", "ABP"), ghost_label: str | None = "before the last correction",
                 line_label: str | None = "moved by Eq. 10"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        self.key = self.key_of(lim, classes, with_abp, prior_xy, titles, ghost_label, line_label)
        panels = 2 if with_abp else 1
        self.fig = Figure(figsize=(4.6 * panels, 5.0), dpi=100)  # fixed margins: a constrained layout is slow
        self.fig.subplots_adjust(left=0.06 * 2 / panels + 0.02, right=0.98, top=0.94, bottom=0.14, wspace=0.18)
        self.canvas = FigureCanvasAgg(self.fig)
        self.axes = self.fig.subplots(1, panels, squeeze=False)[0]
        self.classes = classes
        colour = {c: CLASS[int(c) % len(CLASS)] for c in classes} if classes else {}
        self.points = []  # per panel: {class: scatter}
        for ax, title in zip(self.axes, titles):
            prior_axes(ax, lim)
            if prior_xy is not None:
                ax.scatter(prior_xy[:, 0], prior_xy[:, 1], s=3, c=GHOST, alpha=0.4, linewidths=0, zorder=1)
            ax.set_title(title, fontsize=10, loc="left")
            self.points.append({c: ax.scatter([], [], s=5, c=colour.get(c, CLASS[0]), alpha=0.7, linewidths=0,
                                              zorder=3, animated=True, label=f"digit {c}" if classes else None)
                                for c in (classes or (None,))})
        self.ghost = self.axes[0].scatter([], [], s=5, c=GHOST, alpha=0.5, linewidths=0, zorder=2, animated=True,
                                          label=ghost_label)  # None: not in the legend
        self.lines = LineCollection([], colors=ARROW, linewidths=0.6, alpha=0.5, zorder=2, animated=True,
                                    label=line_label)
        self.axes[0].add_collection(self.lines)
        self.notes = [ax.text(0.01, 0.01, "", transform=ax.transAxes, fontsize=8, color="#555555", animated=True)
                      for ax in self.axes]
        self.fig.legend(*self.axes[0].get_legend_handles_labels(), loc="lower center", ncols=2 * panels, fontsize=8,
                        frameon=False, markerscale=2)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)

    @staticmethod
    def key_of(*args) -> tuple:
        """What the background drawn once shows, from the constructor's arguments (arrays by their bytes)."""
        return tuple(a.tobytes() if isinstance(a, np.ndarray) else a for a in args)

    def png(self, ours: np.ndarray, labels: np.ndarray | None, abp: np.ndarray | None = None,
            before: np.ndarray | None = None, arrows: tuple[np.ndarray, np.ndarray] | None = None,
            notes: tuple[str, str] = ("", "")) -> bytes:
        """The picture with these points; `notes` go in each panel's lower left corner (e.g. the iteration)."""
        from PIL import Image
        self.canvas.restore_region(self.background)
        empty = np.empty((0, 2))
        self.ghost.set_offsets(before if before is not None else empty)
        self.lines.set_segments(np.stack(arrows, 1) if arrows is not None else [])
        self.axes[0].draw_artist(self.ghost)
        self.axes[0].draw_artist(self.lines)
        for ax, pts, z, text, note in zip(self.axes, self.points, (ours, abp), self.notes, notes):
            for c, artist in pts.items():
                artist.set_offsets(z if c is None or labels is None else z[labels == c])
                ax.draw_artist(artist)
            text.set_text(note)
            ax.draw_artist(text)
        self.canvas.blit(self.fig.bbox)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(self.canvas.buffer_rgba())[..., :3]).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


def fits_png(runs: dict[str, Sequence[dict]], chain_level: float, q_level: float, on_prior: float) -> bytes:
    """Per run: the model's own q(z^K) fit (solid) and the chains' fit (dotted) as multiples of their
    prior-vs-prior level (1 = on the prior) on a log axis, and the MSE below."""
    fig = Figure(figsize=(4.4, 5.6), dpi=100)
    fig.subplots_adjust(left=0.15, right=0.97, top=0.95, bottom=0.21, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    for name, records in runs.items():
        c = RUNS.get(name, "#555555")
        q = np.array([(r["iteration"], r["q_fit"] / q_level) for r in records if "q_fit" in r]).reshape(-1, 2)
        ch = np.array([(r["iteration"], r["chain_fit"] / chain_level) for r in records if "chain_fit" in r])
        m = np.array([(r["iteration"], r["mse"]) for r in records]).reshape(-1, 2)
        top.plot(q[:, 0], q[:, 1], "-o", color=c, ms=2.5, lw=1.4, label=f"{name}: q(z^K) from noise")
        top.plot(*ch.reshape(-1, 2).T, ":", color=c, lw=1, label=f"{name}: persistent chains")
        bottom.plot(m[:, 0], m[:, 1], color=c, lw=1)
    if not any("q_fit" in r or "chain_fit" in r for records in runs.values() for r in records):
        top.text(0.5, 0.5, "the curves start at the first\nL-th iteration", ha="center", va="center",
                 transform=top.transAxes, fontsize=9, color="#777777")
    top.axhline(1, color="grey", ls="--", lw=1, label="prior vs prior")
    top.axhline(on_prior, color="#bbbbbb", ls=":", lw=1, label=f"on the prior (x {on_prior:g})")
    top.set_yscale("log")
    top.yaxis.set_major_formatter("{x:g}")  # 0.2 reads 0.2, 10 reads 10: no exponent labels that collide
    top.yaxis.set_minor_formatter(NullFormatter())
    top.set_ylabel("OT cost to the prior, x prior level", fontsize=8)
    top.set_title("How far from the prior", fontsize=10, loc="left")
    fig.legend(*top.get_legend_handles_labels(), loc="lower center", ncols=2, fontsize=7, frameon=False)  # off the curves
    bottom.set_ylabel("MSE per pixel", fontsize=8)
    bottom.set_ylim(bottom=0)  # an MSE is never negative: before the first iteration the panel reads 0 up, not +-0.05
    if not any(runs.values()):
        bottom.set_xlim(0, 10)  # and the iterations start at 0
    bottom.set_xlabel("iteration", fontsize=8)
    for ax in (top, bottom):
        ax.tick_params(labelsize=8)
        ax.grid(color="#eeeeee", lw=0.6)
    return figure_png(fig)

"""PNG pictures of the Anomaly view, drawn with matplotlib on the server: the histogram of reference scores
with the threshold and the uploads' scores, and the precision-recall curve (no chart library in the browser;
see cloud_pictures.py)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ui.pictures.grids import CLASS
from ui.pictures.clouds import figure_png

UPLOAD = "#d62728"


def score_range(normal: np.ndarray, anomalous: np.ndarray | None, threshold: float) -> tuple[float, float]:
    """The score axis: the reference's 0.1 to 99.9 % quantiles and the threshold, widened by 5 % each side. An
    upload far outside is drawn at the edge with its score in the label, so one extreme file does not squeeze
    the rest."""
    ref = np.concatenate([normal] + ([anomalous] if anomalous is not None else []))
    lo, hi = np.quantile(ref, [0.001, 0.999])
    pad = 0.05 * (hi - lo or 1.0)
    return float(min(lo, threshold) - pad), float(max(hi, threshold) + pad)


def score_histogram_png(normal: np.ndarray, anomalous: np.ndarray | None, threshold: float,
                        marks: Sequence[tuple[str, float]] = ()) -> bytes:
    """Reference scores -log p(x, z) of normal (and held-out) images as densities, the threshold (dashed), and
    each upload's score (red; dotted at the edge when off the axis)."""
    lo, hi = score_range(normal, anomalous, threshold)
    bins = np.linspace(lo, hi, 81)
    fig = Figure(figsize=(9.0, 3.4), dpi=100)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.88, bottom=0.16)
    ax = fig.subplots()
    ax.hist(normal, bins, density=True, alpha=0.6, color=CLASS[0], label="normal reference images")
    if anomalous is not None:
        ax.hist(anomalous, bins, density=True, alpha=0.5, color=CLASS[1], label="held-out digit")
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label="threshold")
    for name, score in marks:
        at = float(np.clip(score, lo, hi))
        off = at != score
        ax.axvline(at, color=UPLOAD, lw=2, ls=":" if off else "-")
        ax.text(at, 0.97, f"{name} ({score:.0f}, off the axis)" if off else name, rotation=90, va="top",
                ha="right", fontsize=8, color=UPLOAD, transform=ax.get_xaxis_transform())
    ax.set_xlim(lo, hi)
    ax.set_xlabel("-log p(x, z)", fontsize=9)
    ax.set_ylabel("density", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(color="#eeeeee", lw=0.6)
    fig.legend(*ax.get_legend_handles_labels(), loc="upper left", ncols=3, fontsize=8, frameon=False)
    return figure_png(fig)


def pr_png(precision: np.ndarray, recall: np.ndarray, auprc: float, chance: float) -> bytes:
    """Precision against recall of the anomaly score, with the chance level (the share of anomalies)."""
    fig = Figure(figsize=(5.0, 3.6), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.14)
    ax = fig.subplots()
    ax.plot(recall, precision, color=CLASS[0], lw=1.6, label=f"AUPRC {auprc:.3f}")
    ax.axhline(chance, color="grey", ls=":", lw=1.2, label=f"chance {chance:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall", fontsize=9)
    ax.set_ylabel("precision", fontsize=9)
    ax.set_title("Precision and recall over all thresholds", fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    ax.grid(color="#eeeeee", lw=0.6)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return figure_png(fig)

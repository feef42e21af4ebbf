"""The Anomaly view's charts and pictures, pure (no Streamlit): the reference histogram with the threshold and
each upload as a hoverable marker, and the precision-recall curve with a hover for each threshold (Plotly
figures; they change only on a user's action, so Streamlit's remount of a changed figure costs nothing); the
residual heatmaps on one colour scale shared by every upload, and that scale's colour bar (PNG)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ui.pictures.clouds import figure_png
from ui.pictures.grids import CLASS

UPLOAD = "#d62728"
RESIDUAL_MAP = "inferno"
PR_POINTS = 400  # the curve is drawn through this many thresholds (hover and click land on them)


def score_range(normal: np.ndarray, anomalous: np.ndarray | None, threshold: float) -> tuple[float, float]:
    """The score axis: the reference's 0.1 to 99.9 % quantiles and the threshold, widened by 5 % each side. An
    upload far outside is listed beside the chart, not drawn, so one extreme file does not squeeze the rest."""
    ref = np.concatenate([normal] + ([anomalous] if anomalous is not None else []))
    lo, hi = np.quantile(ref, [0.001, 0.999])
    pad = 0.05 * (hi - lo or 1.0)
    return float(min(lo, threshold) - pad), float(max(hi, threshold) + pad)


def marker_rows(scores: Sequence[float], gap: float) -> list[int]:
    """A row for each upload's marker so that markers closer than `gap` on the axis never share a row."""
    rows, last = [0] * len(scores), []  # last[r]: the rightmost score placed in row r
    for i in np.argsort(scores, kind="stable"):
        row = next((r for r, x in enumerate(last) if scores[i] - x >= gap), len(last))
        if row == len(last):
            last.append(scores[i])
        last[row] = scores[i]
        rows[i] = row
    return rows


def histogram(normal: np.ndarray, anomalous: np.ndarray | None, threshold: float,
              uploads: Sequence[tuple[str, float, float]] = (), anomaly_name: str = "held-out digit"
              ) -> tuple[go.Figure, list[tuple[str, float, float]]]:
    """(the figure, the uploads off its axis). Reference scores -log p(x, z) of normal (and held-out) images as
    densities, the threshold (dashed) and each upload (name, score, percentile) as a numbered marker under the
    bars with its name, score and percentile on hover."""
    lo, hi = score_range(normal, anomalous, threshold)
    bins = np.linspace(lo, hi, 81)
    mids, width = (bins[:-1] + bins[1:]) / 2, bins[1] - bins[0]
    fig = go.Figure()
    top = 0.0
    for values, name, colour in [(normal, "normal reference images", CLASS[0]), (anomalous, anomaly_name, CLASS[1])]:
        if values is None:
            continue
        dens = np.histogram(values, bins)[0] / (len(values) * width)
        top = max(top, float(dens.max()))
        fig.add_bar(x=mids, y=dens, width=width, name=name, marker_color=colour, opacity=0.6,
                    hovertemplate="score %{x:.1f}: density %{y:.4f}<extra>" + name + "</extra>")
    shown = [(i, u) for i, u in enumerate(uploads) if lo <= u[1] <= hi]
    off = [u for u in uploads if not lo <= u[1] <= hi]
    if shown:
        rows = marker_rows([u[1] for _, u in shown], gap=0.025 * (hi - lo))
        step = 0.08 * top
        fig.add_scatter(x=[u[1] for _, u in shown], y=[-step * (1 + r) for r in rows], mode="markers+text",
                        text=[str(i + 1) for i, _ in shown], textposition="middle right", name="your images",
                        marker=dict(color=UPLOAD, size=9, symbol="triangle-up"), textfont=dict(color=UPLOAD),
                        customdata=[[u[0], u[2]] for _, u in shown],
                        hovertemplate="%{customdata[0]}<br>score %{x:.1f}, higher than %{customdata[1]:.1f} % of "
                                      "the normal reference<extra></extra>")
    fig.add_vline(x=threshold, line_dash="dash", line_color="black", annotation_text="threshold",
                  annotation_position="top right")
    fig.update_layout(barmode="overlay", height=360, margin=dict(l=10, r=10, t=60, b=40), bargap=0,
                      xaxis=dict(title="score -log p(x, z)", range=[lo, hi]), yaxis=dict(title="density"),
                      legend=dict(orientation="h", y=1.22, x=0), hovermode="closest")
    return fig, off


def pr_points(normal: np.ndarray, anomalous: np.ndarray, n: int = PR_POINTS) -> dict[str, np.ndarray]:
    """Thresholds (n quantiles of all scores) and, at each, recall, precision and the false-alarm rate."""
    both = np.concatenate([normal, anomalous])
    thr = np.unique(np.quantile(both, np.linspace(0, 1, n)))
    flagged_a = (anomalous[None] > thr[:, None]).sum(1)
    flagged_n = (normal[None] > thr[:, None]).sum(1)
    precision = np.where(flagged_a + flagged_n > 0, flagged_a / np.maximum(flagged_a + flagged_n, 1), 1.0)
    return {"threshold": thr, "recall": flagged_a / len(anomalous), "precision": precision,
            "false_alarm": flagged_n / len(normal)}


def pr_curve(points: dict[str, np.ndarray], auprc: float, chance: float, threshold: float) -> go.Figure:
    """Precision against recall over the thresholds of `points`, the chance level, and the current threshold;
    hover names each point's threshold, recall and false alarms, and a click on one sets the threshold."""
    fig = go.Figure()
    fig.add_scatter(x=points["recall"], y=points["precision"], mode="lines+markers", name=f"AUPRC {auprc:.3f}",
                    line=dict(color=CLASS[0]), marker=dict(size=4),
                    customdata=np.stack([points["threshold"], points["false_alarm"] * 100], -1),
                    hovertemplate="threshold %{customdata[0]:.1f}<br>recall %{x:.1%}, precision %{y:.1%}<br>"
                                  "false alarms %{customdata[1]:.1f} % of normal images<extra></extra>")
    i = int(np.argmin(np.abs(points["threshold"] - threshold)))
    fig.add_scatter(x=[points["recall"][i]], y=[points["precision"][i]], mode="markers", name="this threshold",
                    marker=dict(color="black", size=11, symbol="x"), hoverinfo="skip")
    fig.add_hline(y=chance, line_dash="dot", line_color="grey", annotation_text=f"chance {chance:.2f}",
                  annotation_position="bottom right")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=40), hovermode="closest", clickmode="event+select",
                      xaxis=dict(title="recall", range=[0, 1.02]), yaxis=dict(title="precision", range=[0, 1.02]),
                      legend=dict(orientation="h", y=1.1, x=0))
    return fig


def residual_image(residual: np.ndarray, vmax: float, side: int = 112) -> np.ndarray:
    """(H, W) per-pixel residual -> an RGB uint8 heatmap on the fixed scale [0, vmax] (shared by every upload)."""
    rep = max(1, side // residual.shape[0])
    t = np.kron(np.clip(np.asarray(residual, np.float64) / vmax, 0, 1), np.ones((rep, rep)))
    return (colormaps[RESIDUAL_MAP](t)[..., :3] * 255).round().astype(np.uint8)


def colour_bar_png(vmax: float, label: str) -> bytes:
    """The residual heatmaps' colour bar, 0 to vmax: horizontal, 4.2 x 0.75 inches, shown once above the
    uploads at its own size (a vertical bar in a narrow column beside each row was scaled down to unreadable
    ticks)."""
    fig = Figure(figsize=(4.2, 0.75), dpi=100)
    fig.subplots_adjust(left=0.03, right=0.97, top=0.92, bottom=0.62)
    ax = fig.subplots()
    fig.colorbar(ScalarMappable(Normalize(0, vmax), RESIDUAL_MAP), cax=ax, orientation="horizontal", label=label)
    ax.tick_params(labelsize=8)
    ax.xaxis.label.set_size(9)
    return figure_png(fig)

"""Plotly figure builders for the app: numpy in, ``go.Figure`` out, no Streamlit.

Clouds are SVG ``scatter`` of at most a few thousand points: a page that redraws twice a second
creates WebGL contexts faster than Chromium frees them ("Too many active WebGL contexts"), and a lost
context is a blank chart. Every latent figure takes a
fixed half-width `lim` so frames share their axes; many line segments are one
trace with ``None`` separators.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from PIL import Image

LIVE, GHOST, AFTER, LINE = "#1f77b4", "rgba(120,120,120,0.35)", "rgba(214,39,40,0.5)", "rgba(44,160,44,0.6)"
BEFORE = "rgba(60,60,60,0.8)"
CLASS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
ARROW = "rgba(40,40,40,0.45)"


def _prior_contours() -> go.Scatter:
    """The prior N(0, I_2)'s 1, 2 and 3 sigma circles, ||z|| = 1, 2, 3 (one trace, None-separated), labelled."""
    t = np.linspace(0, 2 * np.pi, 121)
    xs, ys, tx, ty, tt = [], [], [], [], []
    for r in (1.0, 2.0, 3.0):
        xs += list(r * np.cos(t)) + [None]
        ys += list(r * np.sin(t)) + [None]
        tx.append(r * np.cos(np.pi / 4))
        ty.append(r * np.sin(np.pi / 4))
        tt.append(f"{r:g}σ")
    return go.Scatter(x=xs + [None] + tx, y=ys + [None] + ty, mode="lines+text", text=[""] * (len(xs) + 1) + tt,
                      textposition="top right", textfont=dict(color="#888888", size=11), name="prior N(0, I): 1, 2, 3σ",
                      line=dict(color="#aaaaaa", width=1), hoverinfo="skip")


def _cloud(xy: np.ndarray, name: str, color: str, size: float = 4.0) -> go.Scatter:
    return go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name,
                        marker=dict(size=size, color=color, opacity=0.7), hoverinfo="skip")


def _square(fig: go.Figure, lim: float, height: int = 460, **kw) -> go.Figure:
    fig.update_xaxes(range=[-lim, lim], zeroline=False, constrain="domain", **kw)
    fig.update_yaxes(range=[-lim, lim], zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain", **kw)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), uirevision="latent",
                      legend=dict(orientation="h", y=-0.08))
    return fig


def preview_lim(z: np.ndarray) -> float:
    """The half-width of the pretrained demo's picture: a whole number >= 4 that holds 99.5 % of |z| with room."""
    return float(max(4.0, np.ceil(np.quantile(np.abs(z), 0.995) * 1.1)))


def latent_figure(live: np.ndarray, lim: float, ghost: np.ndarray | None = None,
                  prior_xy: np.ndarray | None = None, title: str = "", name: str = "q(z^K) now") -> go.Figure:
    """Latents (m, 2), named `name` in the legend, over the prior's contours (or its projected sample), with an
    optional ghost cloud."""
    traces: list = [_prior_contours()] if prior_xy is None else [_cloud(prior_xy, "prior sample", GHOST, 3)]
    if ghost is not None:
        traces.append(_cloud(ghost, "previous correction", GHOST, 3))
    traces.append(_cloud(live, name, LIVE))
    return _square(go.Figure(traces, layout=dict(title=title)), lim)


def segments(a: np.ndarray, b: np.ndarray) -> tuple[list, list]:
    """x, y lists of the segments a_i -> b_i, separated by None (one trace for all lines)."""
    xs, ys = [], []
    for (x0, y0), (x1, y1) in zip(a.tolist(), b.tolist()):
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return xs, ys


def correction_figure(before: np.ndarray, after: np.ndarray, source: np.ndarray, target: np.ndarray,
                      lim: float, title: str = "") -> go.Figure:
    """One correction: z_hat_i (before), Eq. 10's result (after), and lines z_hat_i -> T(z_hat_i)."""
    xs, ys = segments(source, target)
    traces = [_prior_contours(), _cloud(before, "before: z_hat = z^K", BEFORE, 3),
              _cloud(after, "after: alpha T(z_hat) + (1 - alpha) z_hat", AFTER, 2.5),
              go.Scatter(x=xs, y=ys, mode="lines", name="z_hat -> T(z_hat)", line=dict(color=LINE, width=1),
                           hoverinfo="skip")]
    return _square(go.Figure(traces, layout=dict(title=title)), lim)


def replay_figure(frames: Sequence[tuple[int, np.ndarray]], lim: float, points: int = 800) -> go.Figure:
    """q(z^K) across frames [(iteration, (m, 2))], with a scrubber and a play button; fixed axes."""
    if not frames:
        raise ValueError("no frames to replay")
    k = min(points, len(frames[0][1]))

    def trace(xy: np.ndarray) -> go.Scatter:  # SVG scatter: plotly animates it reliably
        return go.Scatter(x=xy[:k, 0], y=xy[:k, 1], mode="markers", name="q(z^K)",
                          marker=dict(size=4, color=LIVE, opacity=0.7))

    names = [str(it) for it, _ in frames]
    fig = go.Figure([_prior_contours(), trace(frames[-1][1])],
                    frames=[go.Frame(data=[trace(xy)], traces=[1], name=nm) for nm, (_, xy) in zip(names, frames)])
    step = [dict(method="animate", label=nm, args=[[nm], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                            transition=dict(duration=0))]) for nm in names]
    play = dict(label="Play", method="animate",
                args=[None, dict(frame=dict(duration=250, redraw=True), fromcurrent=True, transition=dict(duration=0))])
    fig.update_layout(updatemenus=[dict(type="buttons", buttons=[play], x=0, y=-0.02, xanchor="left")],
                      sliders=[dict(steps=step, active=len(step) - 1, currentvalue=dict(prefix="iteration "),
                                    x=0.12, len=0.88)])
    return _square(fig, lim, height=520)


def side_by_side(clouds: Sequence[tuple[str, np.ndarray]], lim: float) -> go.Figure:
    """Latent clouds of several runs on the same data, each over the prior (paper Fig. 3)."""
    fig = make_subplots(1, len(clouds), subplot_titles=[t for t, _ in clouds])
    for i, (_, xy) in enumerate(clouds, start=1):
        fig.add_trace(_prior_contours(), 1, i)
        fig.add_trace(_cloud(xy, "q(z^K)", LIVE, 3), 1, i)
    fig.update_xaxes(range=[-lim, lim])
    fig.update_yaxes(range=[-lim, lim])
    fig.update_layout(height=420, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def curves_figure(records: Sequence[dict], prior_fit: float) -> go.Figure:
    """OT cost of the persistent chains to the prior (with the prior-vs-prior level), unmatched share and MSE per iteration.

    Three stacked axes of one figure, built directly (no make_subplots or add_hline, which cost tens of
    milliseconds per redraw, and the Train view redraws this every refresh).
    """
    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([(r["iteration"], r[key]) for r in records if key in r], dtype=float).reshape(-1, 2)
        return pts[:, 0], pts[:, 1]

    (fx, fy), (ux, uy), (mx, my) = series("chain_fit"), series("unmatched"), series("mse")
    end = [0.0, max(float(mx[-1]) if len(mx) else 1.0, 1.0)]
    traces = [go.Scatter(x=fx, y=fy, mode="lines+markers", name="chains' fit", marker=dict(size=4), yaxis="y"),
              go.Scatter(x=end, y=[prior_fit] * 2, mode="lines", name="prior vs prior",
                         line=dict(dash="dash", color="grey"), yaxis="y"),
              go.Scatter(x=end, y=[1.1 * prior_fit] * 2, mode="lines", name="on the prior (x 1.1)",
                         line=dict(dash="dot", color="lightgrey"), yaxis="y"),
              go.Scatter(x=ux, y=uy, mode="lines+markers", name="unmatched", marker=dict(size=4), yaxis="y2"),
              go.Scatter(x=mx, y=my, mode="lines", name="MSE", yaxis="y3")]
    title = dict(font=dict(size=13), x=0, xanchor="left")
    layout = dict(height=460, showlegend=False, margin=dict(l=10, r=10, t=30, b=10),
                  xaxis=dict(anchor="y3", title_text="iteration"),
                  yaxis=dict(domain=[0.7, 1.0], type="log", title=dict(text="OT cost of the chains to the prior",
                                                                       font=dict(size=11))),
                  yaxis2=dict(domain=[0.36, 0.64], range=[0, 1], title=dict(text="unmatched share",
                                                                            font=dict(size=11))),
                  yaxis3=dict(domain=[0.0, 0.3], title=dict(text="MSE per pixel", font=dict(size=11))),
                  title=dict(text="OT cost to the prior, unmatched share, MSE", **title))
    return go.Figure(traces, layout=layout)


def grid_image(x: np.ndarray, ncol: int, pad: int = 2) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] -> one uint8 picture (rows x cols tiles), (H', W') or (H', W', 3)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1)
    n, c, h, w = x.shape
    rows = -(-n // ncol)
    out = np.ones((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        out[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = x[i]
    img = (out * 255).round().astype(np.uint8)
    return img[0] if c == 1 else img.transpose(1, 2, 0)


def png_bytes(img: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 picture as PNG bytes, enlarged `scale` times with nearest neighbours."""
    pil = Image.fromarray(img)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def score_histogram(normal: np.ndarray, anomalous: np.ndarray | None, threshold: float,
                    marks: Sequence[tuple[str, float]] = ()) -> go.Figure:
    """Reference scores -log p(x, z) of normal (and held-out) images, the threshold, and uploaded images' scores.

    The axis covers the reference (0.1 to 99.9 % quantiles, widened a little) and the threshold: an upload far
    outside is drawn at the edge with its score in the label, so one extreme file does not squeeze the rest.
    """
    ref = np.concatenate([normal] + ([anomalous] if anomalous is not None else []))
    lo, hi = np.quantile(ref, [0.001, 0.999])
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = min(lo, threshold) - pad, max(hi, threshold) + pad
    kept = lambda a: a[(a >= lo) & (a <= hi)]  # noqa: E731
    fig = go.Figure([go.Histogram(x=kept(normal), name="normal reference images", nbinsx=80, opacity=0.6,
                                  histnorm="probability density")])
    if anomalous is not None:
        fig.add_trace(go.Histogram(x=kept(anomalous), name="held-out digit", nbinsx=80, opacity=0.5,
                                   histnorm="probability density"))
    fig.add_vline(x=threshold, line=dict(color="black", dash="dash"), annotation_text="threshold")
    for name, s in marks:
        at = float(np.clip(s, lo, hi))
        label = name if at == s else f"{name} ({s:.0f}, off the axis)"
        fig.add_vline(x=at, line=dict(color="#d62728", width=2, dash="solid" if at == s else "dot"),
                      annotation_text=label, annotation_textangle=-90)
    fig.update_layout(barmode="overlay", height=320, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="-log p(x, z)", xaxis_range=[lo, hi], legend=dict(orientation="h", y=1.12))
    return fig


def heat_image(a: np.ndarray, side: int = 112) -> np.ndarray:
    """(H, W) non-negative values -> an RGB uint8 heatmap `side` pixels wide (black = 0, yellow = the max)."""
    t = np.asarray(a, dtype=np.float64)
    t = t / t.max() if t.max() > 0 else t
    rep = max(1, side // t.shape[0])
    t = np.kron(t, np.ones((rep, rep)))
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)  # black-red-yellow-white
    return (rgb * 255).round().astype(np.uint8)


def pr_figure(precision: np.ndarray, recall: np.ndarray, auprc: float, chance: float) -> go.Figure:
    """Precision-recall curve of the anomaly score, with the chance level (share of anomalies)."""
    fig = go.Figure([go.Scatter(x=recall, y=precision, mode="lines", name=f"AUPRC {auprc:.3f}")])
    fig.add_hline(y=chance, line=dict(dash="dot", color="grey"), annotation_text=f"chance {chance:.2f}")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="recall",
                      yaxis_title="precision", xaxis_range=[0, 1], yaxis_range=[0, 1.02], showlegend=True)
    return fig

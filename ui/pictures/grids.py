"""Pictures from arrays, no Streamlit: image grids and heat maps as uint8 arrays, PNG bytes, the class colours,
and the half-width of the demo picture's axes. The clouds and curves are matplotlib pictures (clouds.py,
scores.py).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

CLASS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def preview_lim(z: np.ndarray) -> float:
    """The half-width of the pretrained demo's picture: a whole number >= 4 that holds 99.5 % of |z| with room."""
    return float(max(4.0, np.ceil(np.quantile(np.abs(z), 0.995) * 1.1)))


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


def heat_image(a: np.ndarray, side: int = 112) -> np.ndarray:
    """(H, W) non-negative values -> an RGB uint8 heatmap `side` pixels wide (black = 0, yellow = the max)."""
    t = np.asarray(a, dtype=np.float64)
    t = t / t.max() if t.max() > 0 else t
    rep = max(1, side // t.shape[0])
    t = np.kron(t, np.ones((rep, rep)))
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)  # black-red-yellow-white
    return (rgb * 255).round().astype(np.uint8)

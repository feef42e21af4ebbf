"""A photo or scan of one digit -> a 28 x 28 image made the way MNIST's were.

MNIST's digits (LeCun et al.) were size-normalised so that the ink fits a 20 x 20 box with its aspect kept
(anti-aliased, hence grey edges), then placed in a 28 x 28 field with their centre of mass at its centre:
white ink on black. On MNIST's own test digits the box of pixels over half the peak is 20 px on its longer
side for every digit, and the centre of mass sits at pixel (14.0, 14.0) (mean over 2,000, std 0.3). A
practitioner's image is dark ink on unevenly lit paper, anywhere in the frame, at any size; `mnist_style`
finds the ink and redoes MNIST's steps:

1. polarity: the ink is the far tail of the grey levels (dark on light paper is inverted);
2. background: a quadratic surface fitted to the pixels that are not ink (refitted 4 times), subtracted, so
   a light gradient or vignetting leaves the paper at 0; the paper's texture is measured (robust sigma);
3. ink: Otsu's threshold on what stands out of the paper, connected pieces smaller than a tenth of the
   largest dropped (dust, specks), and nothing found when the contrast does not clear the paper's noise;
4. crop to the ink's box with a margin (zeros beyond the border), scale so the box's longer side is 20 px,
   place by the centre of mass at (14, 14).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

SIDE, BOX, CENTRE = 28, 20, 14.0  # MNIST's field, the ink box's longer side, the centre of mass (pixel index)
MIN_CONTRAST = 0.08  # ink must stand this far out of the paper (grey levels in [0, 1]) ...
NOISE_TIMES = 6.0    # ... and this many times the paper's noise (robust sigma)
MIN_EXTENT = 0.03    # and span at least this share of the image's longer side
SATURATED = 70      # percentile of the inked pixels (> 0.05) set to full ink: 4.9 % of 16.5 % on MNIST's test
SPECK = 0.1          # ink pieces smaller than this share of the largest are not part of the digit


@dataclass(frozen=True)
class Digit:
    """What `mnist_style` made of one image.

    image: (28, 28) float32 in [0, 1], white ink on black; None when no ink was found.
    inverted: the ink was dark on light paper.
    reason: why there is no image ("" when there is one).
    box: the ink's box in the given image (top, left, bottom, right; exclusive ends), or None.
    contrast: the ink's level above the paper; noise: the paper's robust sigma (both in grey levels).
    """

    image: np.ndarray | None
    inverted: bool
    reason: str
    box: tuple[int, int, int, int] | None
    contrast: float
    noise: float


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the level that maximises the between-class variance of `values`."""
    values = np.asarray(values, np.float64)
    if values.max() - values.min() < 1e-6:  # one level: nothing to split
        return float(values.min())
    hist, edges = np.histogram(values, bins)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = w0[-1] + hist[-1] - w0
    m0 = np.cumsum(hist * mids)[:-1] / np.maximum(w0, 1)
    m1 = (np.sum(hist * mids) - np.cumsum(hist * mids)[:-1]) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a gap between two levels: its middle
    return float(edges[1:-1][best].mean())


def background(a: np.ndarray, rounds: int = 5) -> tuple[np.ndarray, float]:
    """(a quadratic surface through the paper of `a` (light ink on darker paper), the paper's robust sigma).

    Each round fits the pixels whose residual is in the lower half (ink covers less than half of a digit's
    image: at most 40 % on MNIST's 10,000 test digits); sigma comes from the residuals' 10th and 40th percentiles.
    """
    h, w = a.shape
    step = max(1, max(h, w) // 128)  # fit on a grid of at most ~128 x 128 points
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1)  # (H, W, 6)
    sub, vals = basis[::step, ::step].reshape(-1, 6), a[::step, ::step].ravel()
    keep = vals <= np.median(vals)
    for _ in range(rounds):
        coef = np.linalg.lstsq(sub[keep], vals[keep], rcond=None)[0]
        r = vals - sub @ coef
        keep = r <= np.median(r)
    p10, p40 = np.percentile(r, [10, 40])
    return (basis @ coef).astype(np.float32), float((p40 - p10) / 1.028)


def mnist_style(grey: np.ndarray) -> Digit:
    """(H, W) grey levels in [0, 1] (any polarity, any size) -> a 28 x 28 MNIST-style digit (see the module)."""
    g = np.asarray(grey, dtype=np.float32)
    lo, med, hi = np.percentile(g, [0.01, 50, 99.99])
    if hi - lo < MIN_CONTRAST / 2:
        return Digit(None, False, f"no ink found: the image is uniform (grey levels span {hi - lo:.3f})",
                     None, float(hi - lo), 0.0)
    inverted = bool(med - lo > hi - med)  # the far tail is dark: dark ink on light paper
    a = 1.0 - g if inverted else g
    bg, noise = background(a)
    ink = a - bg
    ink -= np.percentile(ink, 40)  # about the paper's own level (the fit is through its lower half)
    floor = max(3 * noise, 0.01)
    contrast = float(ndimage.uniform_filter(ink, 3).max())  # 3 x 3 means: a speck counts, one noisy pixel not
    if contrast < max(MIN_CONTRAST, NOISE_TIMES * noise):
        return Digit(None, inverted, f"no ink found: nothing stands out of the background (contrast "
                     f"{contrast:.3f}, background noise {noise:.3f})", None, contrast, noise)
    mask = ink > max(otsu(ink[ink > floor]) if (ink > floor).sum() > 1 else floor, floor)
    if not mask.any():  # one level of ink only: Otsu has nothing to split
        mask = ink > floor
    labels, n = ndimage.label(mask, np.ones((3, 3)))
    sizes = ndimage.sum_labels(mask, labels, np.arange(1, n + 1))
    mask = np.isin(labels, 1 + np.flatnonzero(sizes >= SPECK * sizes.max()))
    full = float(np.percentile(ink[mask], 90))  # the strokes' core: MNIST's strokes are saturated
    if full < max(MIN_CONTRAST, NOISE_TIMES * noise):  # Otsu split the paper's own texture: no strokes
        return Digit(None, inverted, f"no ink found: nothing stands out of the background (strokes at "
                     f"{full:.3f}, background noise {noise:.3f})", None, full, noise)
    near = ndimage.binary_dilation(mask, np.ones((3, 3)), iterations=max(1, max(mask.shape) // 100))
    half = near & (ink > max(floor, 0.5 * full))  # the box: pixels over half the peak, as MNIST's (module doc)
    rows, cols = np.flatnonzero(half.any(1)), np.flatnonzero(half.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    long = max(bottom - top, right - left)
    if long < max(3, MIN_EXTENT * max(g.shape)):
        return Digit(None, inverted, f"no ink found: only a speck of {bottom - top} x {right - left} pixels "
                     f"stands out (nearly blank)", (top, left, bottom, right), contrast, noise)
    soft = np.clip((ink - floor) / max(full - floor, 1e-6), 0, 1)
    near = ndimage.binary_dilation(mask, np.ones((3, 3)), iterations=max(1, long // 10))
    soft = np.where(near, soft, 0).astype(np.float32)  # dust and marks away from the digit dropped
    m = max(2, long // 4)  # crop with a margin, zeros beyond the image's border
    crop = np.pad(soft, m)[top:bottom + 2 * m, left:right + 2 * m]
    scale = BOX / long
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BILINEAR), np.float32)
    small = np.clip(small, 0, 1)
    cy, cx = ndimage.center_of_mass(small)
    out = np.zeros((SIDE, SIDE), np.float32)
    oy, ox = int(round(CENTRE - cy)), int(round(CENTRE - cx))  # where small's (0, 0) goes
    ys, xs = slice(max(0, oy), min(SIDE, oy + small.shape[0])), slice(max(0, ox), min(SIDE, ox + small.shape[1]))
    out[ys, xs] = small[ys.start - oy:ys.stop - oy, xs.start - ox:xs.stop - ox]
    inked = out[out > 0.05]
    if inked.size:  # MNIST's strokes: about 30 % of the inked pixels saturated (bilinear shrinking softens ours)
        out = np.clip(out / max(float(np.percentile(inked, SATURATED)), 1e-6), 0, 1)
    return Digit(out, inverted, "", (int(top), int(left), int(bottom), int(right)), contrast, noise)

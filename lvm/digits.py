"""A photo or scan of one digit -> a 28 x 28 image made the way MNIST's were.

MNIST's digits (LeCun et al.) were size-normalised so that the ink fits a 20 x 20 box with its aspect kept
(anti-aliased, hence grey edges), then placed in a 28 x 28 field with their centre of mass at its centre:
white ink on black. On MNIST's own test digits the box of pixels over half the peak is 20 px on its longer
side for 98 % of the digits (18-19 for the rest), and the centre of mass sits at pixel (14.0, 14.0) (mean over
2,000, std 0.3); such an image is left as it is (`in_format`: making it again would blur and brighten it). A
practitioner's image is dark ink on unevenly lit paper, anywhere in the frame, at any size; `mnist_style`
finds the ink and redoes MNIST's steps:

1. polarity: the ink is the far tail of the grey levels (dark on light paper is inverted);
2. background: a quadratic surface fitted to the pixels that are not ink (refitted 4 times), subtracted, so
   a light gradient or vignetting leaves the paper at 0; the paper's texture is measured (robust sigma);
3. ink: Otsu's threshold on what stands out of the paper, connected pieces smaller than a tenth of the
   largest dropped (dust, specks), and nothing found when the contrast does not clear the paper's noise;
4. crop to the ink's box with a margin (zeros beyond the border), scale so the box's longer side is 20 px,
   place by the centre of mass at (14, 14).

Nothing to score (refused with the reason): a uniform page; nothing standing out of the paper's noise; a light
page whose only marks are lighter (glare, over-exposure); "ink" running along the frame over more than its own
size (a shadow, uneven light: a written digit is rarely cut by the frame that much); a speck; and, at MNIST's
scale, fewer than MIN_STROKE stroke pixels (dust) or strokes thicker than THICK (a blot, a glare spot).
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
LIGHT = 0.6          # a page with its median grey over this is paper: its ink is darker (lighter marks are glare)
EDGE = 1.2           # ink touching the image's border over more than this many times its box's longer side is light
#                      (scikit-learn's 8 x 8 digits, cropped to the ink, touch it over at most 1.125 times)
MIN_STROKE = 15      # pixels over half in the 28 x 28 result: fewer is dust (MNIST's test digits: at least 19)
THICK = 3.3          # mean distance to the strokes' edge (px, 28 x 28) above which it is a patch: MNIST's test digits
#                      <= 2.6, photos of them <= 2.3, scikit-learn's 8 x 8 digits <= 3.2; a glare spot 3.5, a blot 3.9


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
    if in_format(g):  # made the way MNIST's digits were already: redoing it would resample and brighten it
        rows, cols = np.flatnonzero((g > 0.5 * g.max()).any(1)), np.flatnonzero((g > 0.5 * g.max()).any(0))
        return checked(g.copy(), False, (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1),
                       float(g.max()), 0.0)
    inverted = bool(med - lo > hi - med)  # the far tail is dark: dark ink on light paper
    if not inverted and med > LIGHT:  # a light page whose only marks are lighter still
        return Digit(None, False, f"no ink found: the page is light (median grey {med:.2f}) and nothing on it is "
                     f"darker than the paper; what stands out is lighter (glare or over-exposure, not ink)",
                     None, float(hi - med), 0.0)
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
    edge = int(mask[0].sum() + mask[-1].sum() + mask[1:-1, 0].sum() + mask[1:-1, -1].sum())
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if edge > EDGE * max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1):  # light is cut by the frame, digits rarely
        return Digit(None, inverted, f"no ink found: what stands out runs {edge} pixels along the picture's edge, "
                     f"more than its own size (over-exposure, a shadow or uneven light, not a written digit)",
                     None, full, noise)
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
    return checked(out, inverted, (int(top), int(left), int(bottom), int(right)), contrast, noise)


def in_format(g: np.ndarray) -> bool:
    """Whether `g` is a digit as MNIST made it: 28 x 28, white on a black ground (the median pixel 0), the box of
    the pixels over half the peak 18-20 px on its longer side (MNIST's test digits: 18-20, 98 % at 20), the centre
    of mass within a pixel of (14, 14)."""
    if g.shape != (SIDE, SIDE) or np.median(g) > 0.01 or g.max() < 0.5:
        return False
    half = g > 0.5 * g.max()
    rows, cols = np.flatnonzero(half.any(1)), np.flatnonzero(half.any(0))
    cy, cx = ndimage.center_of_mass(g)
    long = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    return BOX - 2 <= long <= BOX and abs(cy - CENTRE) <= 1 and abs(cx - CENTRE) <= 1


def checked(out: np.ndarray, inverted: bool, box: tuple[int, int, int, int], contrast: float, noise: float) -> Digit:
    """The 28 x 28 result `out` as a Digit, or a refusal when it holds no pen strokes: too few pixels over half
    (dust) or strokes thicker than MNIST's (a blot, a glare, a shadow)."""
    strokes = out > 0.5
    if strokes.sum() < MIN_STROKE:
        return Digit(None, inverted, f"no ink found: only scattered specks ({int(strokes.sum())} pixels of "
                     f"stroke at MNIST's scale; dust or noise?)", box, contrast, noise)
    width = float(ndimage.distance_transform_edt(strokes)[strokes].mean())
    if width > THICK:
        return Digit(None, inverted, f"no ink found: a solid patch, not pen strokes (mean half-width {width:.1f} "
                     f"pixels at MNIST's scale, where digits are at most {THICK}: a blot, a glare or a shadow?)",
                     box, contrast, noise)
    return Digit(out, inverted, "", box, contrast, noise)

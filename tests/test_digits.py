"""MNIST-style preprocessing (lvm.digits): crafted photos of real MNIST digits come back where MNIST put them,
blank pages are refused, and MNIST's own test digits keep the shipped detectors' AUPRC and false alarms."""
from __future__ import annotations

import io
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from experiments.mnist_preprocessing import paired
from lvm import data as datasets, pretrained
from lvm.config import DataConfig
from lvm.digits import mnist_style, otsu
from lvm.images import prepare


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    t = datasets.load(DataConfig("mnist"), "test")
    return t.x[:, 0].numpy(), t.y.numpy()


def craft(a: np.ndarray, size=(480, 640), scale=10, angle=0.0, at=(0.35, 0.6), stroke=0, dark=True, light=0.35,
          noise=0.03, seed=0) -> np.ndarray:
    """A grey 'photo' of MNIST digit `a`: drawn `scale` times larger at `at` (fractions of the frame), rotated,
    strokes thickened (stroke > 0) or thinned (< 0), dark ink on paper lit by a gradient, textured, JPEG."""
    rs = np.random.RandomState(seed)
    big = np.asarray(Image.fromarray((a * 255).astype(np.uint8)).resize((28 * scale,) * 2, Image.Resampling.BICUBIC),
                     np.float32) / 255
    if stroke:
        big = (ndimage.grey_dilation if stroke > 0 else ndimage.grey_erosion)(big, size=(abs(stroke),) * 2)
    if angle:
        big = ndimage.rotate(big, angle, reshape=False, order=1)
    h, w = size
    ink = np.zeros(size, np.float32)
    y0, x0 = int(at[0] * h - big.shape[0] / 2), int(at[1] * w - big.shape[1] / 2)
    ink[y0:y0 + big.shape[0], x0:x0 + big.shape[1]] = np.clip(big, 0, 1)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    paper = 0.85 - light * (0.6 * xx + 0.4 * yy) + noise * 3 * ndimage.gaussian_filter(rs.randn(h, w), 1.0)
    g = paper * (1 - 0.85 * ink) if dark else 0.1 + 0.8 * ink + noise * rs.randn(h, w)
    buf = io.BytesIO()
    Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8)).save(buf, "JPEG", quality=80)
    return np.asarray(Image.open(buf), np.float32) / 255


def placement(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(centre of mass, longer side of the box of pixels over half the peak): MNIST's are (14, 14) and 20."""
    rows, cols = np.flatnonzero((x > 0.5).any(1)), np.flatnonzero((x > 0.5).any(0))
    return np.array(ndimage.center_of_mass(x)), int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def test_mnist_digits_themselves_are_left_in_place(mnist_test) -> None:
    x = mnist_test[0][:300]
    out = [mnist_style(a) for a in x]
    assert all(o.image is not None and not o.inverted for o in out)
    diff = np.array([np.abs(o.image - a).mean() for o, a in zip(out, x)])
    assert np.median(diff) < 0.005 and np.percentile(diff, 95) < 0.01  # grey levels in [0, 1]


CASES = {  # name: craft() settings, the least correlation with the MNIST digit allowed (median over 12 digits)
    "off-centre, dark on light, uneven light": (dict(at=(0.68, 0.25)), 0.9),
    "rotated 6 degrees": (dict(angle=6.0), 0.8),
    "rotated -6 degrees": (dict(angle=-6.0), 0.8),
    "thick strokes": (dict(stroke=7), 0.85),
    "thin strokes": (dict(stroke=-5), 0.85),
    "light on dark": (dict(dark=False), 0.9),
    "strong light gradient": (dict(light=0.6), 0.9),
    "large photo, 3000 x 4000": (dict(size=(3000, 4000), scale=40, at=(0.5, 0.4)), 0.9),
    "small digit in the frame": (dict(scale=3), 0.85),
}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_photos_come_back_where_mnist_put_the_digit(mnist_test, case) -> None:
    kw, least = CASES[case]
    corr, coms, boxes = [], [], []
    for i, a in enumerate(mnist_test[0][:12]):
        grey = craft(a, seed=i, **kw)
        if max(grey.shape) > 1024:  # what lvm.images.decode hands over: reduced to 1024 px
            grey = np.asarray(Image.fromarray((grey * 255).astype(np.uint8)).reduce(4), np.float32) / 255
        d = mnist_style(grey)
        assert d.image is not None, d.reason
        assert d.inverted == kw.get("dark", True)
        corr.append(np.corrcoef(d.image.ravel(), a.ravel())[0, 1])
        com, box = placement(d.image)
        coms.append(com)
        boxes.append(box)
    assert np.median(corr) >= least, (case, np.round(corr, 3))
    assert np.abs(np.mean(coms, 0) - 14.0).max() < 0.5 and np.abs(np.array(coms) - 14.0).max() < 1.5
    assert np.median(boxes) == 20 and min(boxes) >= 17 and max(boxes) <= 22, boxes


@pytest.mark.parametrize("page,why", [
    (np.full((480, 640), 0.93), "uniform"),
    (0.9 - 0.3 * np.mgrid[0:480, 0:640][1] / 640, "stands out"),  # a lit gradient, nothing written
    (None, "stands out"),                                            # paper texture and JPEG noise only
])
def test_blank_pages_are_refused(page, why) -> None:
    if page is None:
        page = craft(np.zeros((28, 28), np.float32))
    d = mnist_style(page)
    assert d.image is None and why in d.reason


def test_a_speck_on_a_page_is_nearly_blank() -> None:
    page = np.full((480, 640), 0.9, np.float32)
    page[200:210, 300:310] = 0.1  # 10 px: under 3 % of the longer side
    d = mnist_style(page)
    assert d.image is None and "speck" in d.reason


def test_otsu_splits_two_levels() -> None:
    v = np.concatenate([np.full(900, 0.1), np.full(100, 0.8)]) + np.random.RandomState(0).normal(0, 0.02, 1000)
    assert 0.2 < otsu(v) < 0.7


BLANK = {  # a page with nothing written on it, (H, W) grid coordinates yy, xx in [0, 1) and textures -> grey levels
    "over-exposed gradient": lambda yy, xx, r2, tex: 0.85 + 0.5 * xx + tex(1, 0.01),
    "over-exposed corner": lambda yy, xx, r2, tex: 0.8 + 0.6 * np.exp(-(yy ** 2 + xx ** 2) / 0.1) + tex(1, 0.01),
    "flash glare": lambda yy, xx, r2, tex: 0.75 + 0.5 * np.exp(-r2 / 0.02) + tex(1, 0.01),
    "over-exposed, almost white": lambda yy, xx, r2, tex: 0.97 + tex(1, 0.01),
    "over-exposed half": lambda yy, xx, r2, tex: np.where(xx > 0.6, 1.0, 0.88) + tex(1, 0.01),
    "under-exposed": lambda yy, xx, r2, tex: 0.12 + tex(1, 0.02),
    "under-exposed, vignetted": lambda yy, xx, r2, tex: 0.35 - 1.2 * r2 + tex(1, 0.02),
    "under-exposed, sensor noise": lambda yy, xx, r2, tex: 0.08 + tex(0, 0.04),
    "paper fibres": lambda yy, xx, r2, tex: 0.85 + tex(2, 0.03),
    "recycled paper": lambda yy, xx, r2, tex: 0.8 + tex(6, 0.05) + tex(1, 0.02),
    "linear gradient": lambda yy, xx, r2, tex: 0.95 - 0.5 * (0.7 * xx + 0.3 * yy) + tex(1, 0.01),
    "strong vignette": lambda yy, xx, r2, tex: 0.9 - 1.5 * r2 + tex(1, 0.01),
    "shadow across the page": lambda yy, xx, r2, tex: 0.85 + tex(1, 0.01) - 0.35 * ndimage.gaussian_filter(
        (xx + 0.3 * yy > 0.55).astype(float), 8),
    "a stray speck": lambda yy, xx, r2, tex: 0.88 + tex(1, 0.01) - 0.7 * ((np.abs(yy - 0.31) < 0.005)
                                                                         & (np.abs(xx - 0.47) < 0.005)),
    "dust": lambda yy, xx, r2, tex: 0.88 + tex(1, 0.01) - 0.6 * (ndimage.uniform_filter(tex(0, 1.0), 3) > 1.6),
    "an ink blot": lambda yy, xx, r2, tex: 0.88 + tex(1, 0.01) - 0.75 * ((yy - 0.375) ** 2 + (xx - 0.5) ** 2 < 0.022 ** 2),
}
PAPERS = ["over-exposed, almost white", "paper fibres", "linear gradient", "strong vignette", "a stray speck", "dust"]
# where a faint digit is legible. Known gap: on the coarse "recycled paper" (texture sigma 0.05) a digit taking 35 %
# of the light is refused (ink must clear 6 times the texture) and one taking 50 % is found but misread (r = 0.48).


def blank_page(kind: str, seed: int, size=(480, 640)) -> np.ndarray:
    rs = np.random.RandomState(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    tex = lambda s, a: a * (ndimage.gaussian_filter(rs.randn(h, w), s) * np.sqrt(4 * np.pi) * s if s else rs.randn(h, w))  # noqa: E731
    return BLANK[kind](yy, xx, (yy - 0.375) ** 2 + (xx - 0.5) ** 2, tex)


def jpeg(g: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("kind", list(BLANK))
def test_crafted_blank_pages_are_refused_with_a_reason(kind) -> None:
    """Over- and under-exposed, textured, lit unevenly, JPEG-compressed, with a speck, dust or a blot: every one
    is refused, at two JPEG qualities and three seeds (with the light-page, edge, dust and patch checks of
    lvm.digits off, 6 of the 16 kinds pass as digits: over-exposure, glare, a shadow, a blot)."""
    for seed in range(3):
        for quality in (80, 15):
            p = prepare(jpeg(blank_page(kind, seed), quality), f"{kind}.jpg", 28, 1, "mnist")
            assert p.x is None and p.refused.startswith("nothing to score"), (kind, seed, quality)


@pytest.mark.parametrize("kind", PAPERS)
def test_faint_digits_on_those_papers_still_pass(mnist_test, kind) -> None:
    """A pencil-faint MNIST digit (its ink taking 35 % off the paper's light) written on the same pages is found
    and read: it correlates with the digit as MNIST placed it."""
    for seed in range(3):
        a = mnist_test[0][seed]
        big = np.asarray(Image.fromarray((a * 255).astype(np.uint8)).resize((200, 200), Image.Resampling.BICUBIC),
                         np.float32) / 255
        ink = np.zeros((480, 640), np.float32)
        ink[150:350, 250:450] = big
        page = np.clip(blank_page(kind, seed), 0, 1) * (1 - 0.35 * ink)
        p = prepare(jpeg(page, 80), f"{kind}.jpg", 28, 1, "mnist")
        assert p.x is not None, (kind, seed, p.refused)
        assert np.corrcoef(p.x[0].numpy().ravel(), a.ravel())[0, 1] > 0.7, (kind, seed)


def test_real_digits_are_not_refused(mnist_test) -> None:
    """MNIST's test digits (the first 2,000) and all of scikit-learn's 8 x 8 digits (cropped to the ink, so they
    touch the border, and blocky when enlarged) pass the blank-page checks."""
    from sklearn.datasets import load_digits

    refused = [d.reason for d in map(mnist_style, mnist_test[0][:2000]) if d.image is None]
    refused += [d.reason for d in (mnist_style(a / 16.0) for a in load_digits().images) if d.image is None]
    assert not refused, refused[:3]


def test_mnist_format_digits_are_left_exactly_as_they_are(mnist_test) -> None:
    """A digit already made the way MNIST made it (28 x 28, 20 px box, centred) is not made again: redoing it
    resampled 2 % of them (box 18-19 px) and brightened the faint ones (one doubled its ink), which moved the
    shipped detectors' false alarms by up to a point (experiments/mnist_preprocessing.py)."""
    x = mnist_test[0][:2000]
    same = [np.array_equal(mnist_style(a).image, a) for a in x]
    assert np.mean(same) > 0.999


# One detector in the suite (scoring 3,000 images: 15 min at load average 12-15 on the shared 2 cores, a few alone);
# `python -m experiments.mnist_preprocessing` measures all five.
DETECTORS = [e for e in pretrained.available() if e.has("test_scores") and e.name == "anomaly-5"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", DETECTORS, ids=[e.name for e in DETECTORS])
def test_mnist_preprocessing_keeps_each_detectors_auprc_and_false_alarms(entry) -> None:
    """3,000 seeded test images of the detector's MEG split, scored as they are (`none`) and prepared (`mnist`)
    with the same per-image Langevin noise (experiments.mnist_preprocessing.paired): the preparation moves the
    AUPRC by at most 0.01, and the false alarms at the detector's 5 % threshold stay within a point of 5 %."""
    r = paired(entry, 3000)
    assert abs(r["delta"]) <= 0.01, r
    assert abs(r["fa_mnist"] - 0.05) <= 0.01, r

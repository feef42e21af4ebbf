"""MNIST-style preprocessing (lvm.digits): crafted photos of real MNIST digits come back where MNIST put them,
blank pages are refused, and MNIST's own test digits keep the shipped detectors' AUPRC and false alarms."""
from __future__ import annotations

import io
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from experiments.photo_evidence import paired_meg
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


# One detector in the suite (about a minute of scoring each on 2 quiet cores; all five would be a quarter of CI's
# 20 minutes); `python -m experiments.photo_evidence` measures all five (results/photo_evidence.md).
DETECTORS = [e for e in pretrained.available() if e.has("test_scores") and e.name == "anomaly-4"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", DETECTORS, ids=[e.name for e in DETECTORS])
def test_mnist_preprocessing_keeps_each_detectors_auprc_and_false_alarms(entry) -> None:
    """600 seeded test images per detector, scored as they are and preprocessed with the same noise (about 2
    minutes each on 2 busy cores). The chains amplify the small pixel changes, so the pair differs by chain
    noise as well: on these 600 (results/photo_evidence.md) the shipped and the rescored `none` scores differ
    by up to 0.024 in AUPRC and 1.6 points of false alarms, and `mnist` and `none` by up to 0.016 and 1.6
    points. The tolerance is that measured noise, rounded up; the issue's 0.01 needs more images to show."""
    r = paired_meg(entry, 600)
    assert abs(r["auprc_mnist"] - r["auprc_none"]) <= 0.02, r
    assert abs(r["fa_mnist"] - r["fa_none"]) <= 0.02, r

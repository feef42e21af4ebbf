"""The app's matplotlib pictures: they decode, and the Anomaly histogram's axis follows the reference."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ui.pictures import clouds as cloud_pictures
from ui.pictures import scores as score_pictures


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def test_the_score_axis_covers_the_reference_and_the_threshold_but_not_an_outlier() -> None:
    normal = np.random.RandomState(0).normal(100.0, 10.0, 5000)
    lo, hi = score_pictures.score_range(normal, None, threshold=115.0)
    assert lo < np.quantile(normal, 0.001) and hi > np.quantile(normal, 0.999) and hi < 160.0
    lo, hi = score_pictures.score_range(normal, None, threshold=300.0)  # a threshold far out is still on it
    assert hi > 300.0 > lo
    png = score_pictures.score_histogram_png(normal, normal + 30.0, 115.0, [("in.png", 120.0), ("far.png", 1e6)])
    assert _size(png) == (900, 340)  # an upload at 1e6 is drawn at the edge, the axis unchanged


def test_the_precision_recall_picture_and_the_clouds_decode() -> None:
    recall = np.linspace(0, 1, 50)
    assert _size(score_pictures.pr_png(1 - 0.5 * recall, recall, 0.75, 0.35)) == (500, 360)
    z = np.random.RandomState(1).standard_normal((300, 2))
    assert _size(cloud_pictures.cloud_png(z, 4.0, "demo")) == (460, 480)  # the landing picture (live clouds: the explorer)

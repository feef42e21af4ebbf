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
    fig, off = score_pictures.histogram(normal, normal + 30.0, 115.0, [("in.png", 120.0, 97.0), ("far.png", 1e6, 100.0)])
    assert off == [("far.png", 1e6, 100.0)]  # listed beside the chart, not drawn: the axis unchanged
    marks = [t for t in fig.data if t.name == "your images"][0]
    assert list(marks.x) == [120.0] and "far.png" not in str(marks.customdata)
    rows = score_pictures.marker_rows([100.0, 100.5, 101.0, 130.0], gap=2.0)
    assert rows == [0, 1, 2, 0]  # close scores on rows of their own, a far one back on the first


def test_the_precision_recall_picture_and_the_clouds_decode() -> None:
    rs = np.random.RandomState(0)
    points = score_pictures.pr_points(rs.normal(0, 1, 500), rs.normal(2, 1, 300))
    assert np.all(np.diff(points["recall"]) <= 0) and np.all(np.diff(points["false_alarm"]) <= 0)
    fig = score_pictures.pr_curve(points, 0.8, 0.375, threshold=1.0)
    assert len(fig.data[0].x) == len(points["threshold"]) and fig.layout.clickmode == "event+select"
    z = np.random.RandomState(1).standard_normal((300, 2))
    assert _size(cloud_pictures.cloud_png(z, 4.0, "demo")) == (460, 480)  # the landing picture (live clouds: the explorer)

"""The debiased W2^2 estimator of lvm.distance: about 0 for one distribution, the closed form for two Gaussians,
and the same value for a fixed q at every n (within its spread), where the raw OT cost keeps growing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lvm import distance as D
from lvm.metrics import latent_ot_cost, prior_baseline_ot_cost


def _normal(n: int, d: int, seed: int, mean=0.0, scale=1.0) -> np.ndarray:
    return np.random.RandomState(seed).standard_normal((n, d)) * scale + mean


def _q(n: int, seed: int) -> np.ndarray:
    """A fixed q that is not the prior: two blobs at (+-1.5, 0), sd 0.4 (a d = 2 posterior of two digits)."""
    rs = np.random.RandomState(seed)
    return rs.standard_normal((n, 2)) * 0.4 + np.where(rs.rand(n, 1) < 0.5, -1.5, 1.5) * np.array([1.0, 0.0])


@pytest.mark.parametrize("n", [300, 1000, pytest.param(2000, marks=pytest.mark.slow)])
def test_two_samples_of_one_distribution_read_about_zero_within_the_band(n):
    band = D.prior_band(n, 2, repeats=8)
    assert abs(band.mean) < 2 * band.sd + 1e-3          # unbiased at 0 (it has either sign)
    assert band.upper == pytest.approx(band.mean + D.BAND_SDS * band.sd)
    for s in range(3):  # fresh pairs, other seeds than the band's: inside the band's width around 0
        est = D.debiased_w2sq(_normal(n, 2, 100 + s), _normal(n, 2, 200 + s), seed=s)
        assert abs(est) < 3 * band.sd + 1e-3
    # the raw cost of the same pair sits above the band: the bias this estimator removes
    assert latent_ot_cost(_normal(n, 2, 100), n=n, seed=200) > band.upper


def test_the_band_narrows_with_n():
    assert D.prior_band(1000, 2, repeats=8).sd < D.prior_band(300, 2, repeats=8).sd


@pytest.mark.parametrize("n", [1000, pytest.param(2000, marks=pytest.mark.slow)])
def test_closed_form_for_two_gaussians_with_different_means(n):
    # W2^2(N(m1, I), N(m2, I)) = ||m1 - m2||^2. Exactly, the estimate is ||m||^2 - 2 m . (mean(a) - mean(b)) plus
    # the prior-vs-prior estimate: its spread is 2 ||m|| sqrt(2 / n) plus the band's.
    m = np.array([1.0, -0.5])
    sd = 2 * np.linalg.norm(m) * math.sqrt(2 / n) + D.prior_band(n, 2, repeats=8).sd
    ests = [D.debiased_w2sq(_normal(n, 2, 10 + s), _normal(n, 2, 20 + s, mean=m), seed=s) for s in range(3)]
    assert np.mean(ests) == pytest.approx(m @ m, abs=3 * sd / math.sqrt(3))
    assert all(abs(e - m @ m) < 3.5 * sd for e in ests)


def test_closed_form_for_a_narrower_gaussian():
    # W2^2(N(0, I_d), N(0, s^2 I_d)) = d (1 - s)^2 = 0.5 for d = 2, s = 0.5
    ests = [D.debiased_w2sq(_normal(1000, 2, 30 + s), _normal(1000, 2, 40 + s, scale=0.5), seed=s) for s in range(3)]
    assert np.mean(ests) == pytest.approx(0.5, abs=0.05)


@pytest.mark.slow
def test_a_fixed_q_reads_the_same_at_every_n_while_the_raw_multiple_grows():
    repeats = {300: 8, 1000: 4, 2000: 3}
    means, spreads, multiples = {}, {}, {}
    for n, r in repeats.items():
        vals = [D.prior_w2sq(_q(n, 50 + s), seed=s) for s in range(r)]
        means[n], spreads[n] = np.mean(vals), np.std(vals, ddof=1)
        multiples[n] = latent_ot_cost(_q(n, 50), n=n) / prior_baseline_ot_cost(n, 2)
    for a, b in [(300, 1000), (1000, 2000), (300, 2000)]:
        assert abs(means[a] - means[b]) < 2 * (spreads[a] + spreads[b])
    assert multiples[300] < multiples[1000] < multiples[2000]  # the old statistic's flaw
    assert multiples[2000] > 3 * multiples[300]


def test_w2_floors_at_zero_and_is_the_square_root():
    assert D.w2(0.25) == 0.5
    assert D.w2(-0.003) == 0.0
    assert math.isnan(D.w2(float("nan")))


def test_accepts_tensors_is_seeded_and_refuses_bad_shapes():
    a, b = _normal(200, 3, 0), _normal(240, 3, 1, mean=1.0)
    v = D.debiased_w2sq(a, b, seed=4)
    assert D.debiased_w2sq(torch.from_numpy(a), torch.from_numpy(b), seed=4) == v
    assert D.debiased_w2sq(a, b, seed=5) != v
    with pytest.raises(ValueError, match="same d"):
        D.debiased_w2sq(a, b[:, :2])
    with pytest.raises(ValueError, match="at least 4"):
        D.debiased_w2sq(a[:3], b)
    with pytest.raises(ValueError):
        D.prior_band(2, 2)

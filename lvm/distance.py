"""One distance between two point clouds: a debiased estimate of W2^2, the same at every sample size.

The OT cost between two samples of n points, W_n(a, b) = (1/n) min_pi sum_i ||a_i - b_pi(i)||^2, overstates
W2^2 of their distributions by a bias that depends on n and d (about log(n) / n in two dimensions): a ratio
to the prior-vs-prior level therefore grows with n for any q that is not the prior. The debiased estimate

    W2^2 ~ (W(a1, b1) + W(a2, b2)) / 2 - (W(a1, a2) + W(b1, b2)) / 2

splits each sample into two random halves (a1, a2 and b1, b2, n/2 points each), so that the cross costs and
the self costs carry the same bias at the same size and it cancels. It is about 0 when a and b come from one
distribution (and can then come out slightly negative), and W2^2 plus a small remainder otherwise. Units:
squared latent units (W2^2); its square root W2, floored at 0, is in latent standard deviations.

Exact assignments (scipy's linear_sum_assignment); numpy and scipy only, no torch, so that a landing view may
use it. The choice and its timing: docs/decisions.md, benchmarks/w2sq.py.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

BAND_REPEATS = 20   # pairs of prior samples behind `prior_band`
BAND_SDS = 2.0      # the band's upper edge: mean + BAND_SDS standard deviations of the estimator on prior pairs


def ot_cost(a: np.ndarray, b: np.ndarray) -> float:
    """(1/n) min over one-to-one matchings pi of sum_i ||a_i - b_pi(i)||^2, exact, for two (n, d) arrays."""
    cost = cdist(a, b, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def _halves(x: np.ndarray, h: int, rs: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rs.permutation(len(x))
    return x[perm[:h]], x[perm[h:2 * h]]


def debiased_w2sq(a, b, seed: int = 0) -> float:
    """Debiased estimate of W2^2 between the distributions of samples `a` and `b` (squared latent units).

    Each sample is split into two random halves of h = min(len(a), len(b)) // 2 points (default_rng(seed));
    the estimate is the mean of the two cross OT costs minus the mean of the two within-sample costs, all
    exact and all between h points (module docstring). About 0 (either sign) for one distribution; for
    N(m1, I) and N(m2, I) about ||m1 - m2||^2.

    Args:
        a: (n, d) array-like (a torch tensor works: it is converted with numpy.asarray).
        b: (m, d) array-like with the same d.
        seed: the split's seed.

    Raises:
        ValueError: not two 2-D arrays of the same width, fewer than 4 points in either, or a NaN or inf.
    """
    a, b = (np.asarray(_host(v), dtype=np.float64) for v in (a, b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, d) samples of the same d; got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the samples hold NaN or inf (did the Langevin chains diverge? lower the step size)")
    h = min(len(a), len(b)) // 2
    if h < 2:
        raise ValueError(f"need at least 4 points in each sample; got {len(a)} and {len(b)}")
    rs = np.random.default_rng(seed)  # not RandomState(seed), which callers draw samples from: a split must not
    (a1, a2), (b1, b2) = _halves(a, h, rs), _halves(b, h, rs)  # depend on the values it splits
    return (ot_cost(a1, b1) + ot_cost(a2, b2)) / 2 - (ot_cost(a1, a2) + ot_cost(b1, b2)) / 2


def _host(v):
    """A torch tensor as a CPU numpy array without importing torch here."""
    return v.detach().cpu().numpy() if hasattr(v, "detach") else v


def w2(w2sq: float) -> float:
    """W2 = sqrt(max(W2^2, 0)) in latent standard deviations, for display: the estimate floored at 0 (it can
    come out slightly negative near 0); nan stays nan."""
    return float("nan") if math.isnan(w2sq) else math.sqrt(max(w2sq, 0.0))


def prior_w2sq(z, seed: int = 0) -> float:
    """`debiased_w2sq` between latents z (n, d) and as many N(0, I) draws (RandomState(seed))."""
    z = np.asarray(_host(z), dtype=np.float64)
    return debiased_w2sq(z, np.random.RandomState(seed).standard_normal(z.shape), seed)


@dataclass(frozen=True)
class Band:
    """The estimator's own spread at (n, d): `debiased_w2sq` between pairs of independent N(0, I) samples.

    upper (mean + BAND_SDS sd) is the level under which a cloud counts as "on the prior" at that n and d.
    """

    n: int
    d: int
    mean: float
    sd: float
    upper: float


@functools.lru_cache(maxsize=64)  # every run of a lecture asks for the same (n, d)
def prior_band(n: int, d: int, repeats: int = BAND_REPEATS) -> Band:
    """`Band` of the estimator at n points in d dimensions, from `repeats` seeded pairs of prior samples."""
    if n < 4 or d < 1 or repeats < 2:
        raise ValueError(f"need n >= 4, d >= 1 and repeats >= 2; got {n}, {d}, {repeats}")
    vals = []
    for s in range(repeats):
        rs = np.random.RandomState(10_000 + s)
        vals.append(debiased_w2sq(rs.standard_normal((n, d)), rs.standard_normal((n, d)), seed=s))
    mean, sd = float(np.mean(vals)), float(np.std(vals, ddof=1))
    return Band(n, d, mean, sd, mean + BAND_SDS * sd)

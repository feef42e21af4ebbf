"""The debiased W2^2 estimator (lvm.distance): its spread and bias at n = 300, 1,000, 2,000 in d = 2, and the time
of its exact assignments by scipy's linear_sum_assignment against POT's network simplex (ot.emd2) and POT's
debiased Sinkhorn divergence, when POT is importable (it is not a dependency: `pip install pot` to compare).

    python -m benchmarks.w2sq [--repeats 20]

Prints one table: per n and estimator, the mean and sd over `repeats` seeded pairs of N(0, I) samples (the
"on the prior" band), the mean for N(0, I) vs N((1, 0), I) (true W2^2 = 1), and the median seconds per estimate.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from scipy.spatial.distance import cdist

from lvm.distance import debiased_w2sq


def _pot_emd(a: np.ndarray, b: np.ndarray) -> float:
    import ot
    w = np.full(len(a), 1.0 / len(a))
    return float(ot.emd2(w, w, cdist(a, b, "sqeuclidean"), numItermax=10_000_000))


def pot_debiased(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """The same split estimator with POT's exact solver."""
    rs = np.random.RandomState(seed)
    h = min(len(a), len(b)) // 2
    pa, pb = rs.permutation(len(a)), rs.permutation(len(b))
    a1, a2, b1, b2 = a[pa[:h]], a[pa[h:2 * h]], b[pb[:h]], b[pb[h:2 * h]]
    return (_pot_emd(a1, b1) + _pot_emd(a2, b2)) / 2 - (_pot_emd(a1, a2) + _pot_emd(b1, b2)) / 2


def pot_sinkhorn(a: np.ndarray, b: np.ndarray, seed: int = 0, reg: float = 0.05) -> float:
    """POT's debiased Sinkhorn divergence on the full samples (entropic: reg in squared latent units)."""
    import ot
    return float(ot.bregman.empirical_sinkhorn_divergence(a, b, reg, numIterMax=2000))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--ns", type=int, nargs="*", default=[300, 1000, 2000])
    a = p.parse_args()
    estimators = {"scipy exact (lvm)": debiased_w2sq}
    try:
        import ot  # noqa: F401
        estimators.update({"POT emd2, same split": pot_debiased, "POT Sinkhorn div. reg 0.05": pot_sinkhorn})
    except ImportError:
        print("POT is not importable: only scipy's exact assignment is measured")
    print(f"load average before: {os.getloadavg()}  (other engineers were working on this 2-core machine)")
    print("| n | estimator | prior vs prior: mean | sd | shift 1 (true 1): mean | sd | s per estimate (median) |")
    print("|---|---|---|---|---|---|---|")
    for n in a.ns:
        for name, fn in estimators.items():
            same, shifted, secs = [], [], []
            for s in range(a.repeats):
                rs = np.random.RandomState(s)
                x, y = rs.standard_normal((n, 2)), rs.standard_normal((n, 2))
                t0 = time.perf_counter()
                same.append(fn(x, y, seed=s))
                secs.append(time.perf_counter() - t0)
                shifted.append(fn(x, y + np.array([1.0, 0.0]), seed=s))
            print(f"| {n} | {name} | {statistics.fmean(same):+.4f} | {statistics.stdev(same):.4f} | "
                  f"{statistics.fmean(shifted):.4f} | {statistics.stdev(shifted):.4f} | "
                  f"{statistics.median(secs):.3f} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

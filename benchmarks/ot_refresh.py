"""Where a solve's list rebuilds go, by batch size: a cold solve and two warm ones (printed tables).

    python -m benchmarks.ot_refresh [--n 60000] [--d 64] [--threads 1]

The problem and protocol of `benchmarks.ot_pass` (`lvm.ot.bench.problem(n, d, "squashed")`, a cold solve, then
two warm ones, each after a 1 % drift of the sources). Every call of `TopK.refresh` on the full problem
is timed with the number of rows it rebuilt (products and list selection together): one full pass of every row
at the start of a cold solve, then the stale rows, in batches whose size the bidding decides. Small batches are
bound by memory (each row streams all n d targets), large ones by the product. The subsampled problems of the
multiscale start are summed in one line.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

BINS = ((1, 1), (2, 16), (17, 256), (257, 4096), (4097, None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import lvm.ot.auction as A
    from lvm.ot.bench import drift_and_solve, problem

    calls: list[tuple[int, float, int]] = []  # (rows, seconds, sources of the problem)
    refresh = A.TopK.refresh

    def timed(self, rows, p, p32=None):
        t0 = time.perf_counter()
        refresh(self, rows, p, p32)
        calls.append((len(rows), time.perf_counter() - t0, len(self.src)))

    A.TopK.refresh = timed
    src, tgt = problem(a.n, a.d, "squashed")
    A.auction(src[:64], tgt[:64])  # compile
    calls.clear()
    g = torch.Generator().manual_seed(1)
    res = None
    print(f"n = {a.n:,}, d = {a.d}, {a.threads} torch thread(s)\n")
    for solve in ("cold", "warm 1", "warm 2"):
        src, res, total = drift_and_solve(src, tgt, res, g)
        rows = np.array([r for r, _, m in calls if m == a.n])
        secs = np.array([s for _, s, m in calls if m == a.n])
        print(f"**{solve}**: {total:.2f} s, {res.passes:.2f} full passes; phases (s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in res.seconds.items()))
        print("\n| rows per rebuild | calls | rows | seconds | ms per row |\n|---|---|---|---|---|")
        for lo, hi in BINS:
            m = (rows >= lo) & (rows <= (hi or rows.max(initial=0)))
            if m.any():
                print(f"| {lo:,}-{hi:,} | " if hi else f"| {lo:,} or more | ", end="")
                per_row = 1e3 * secs[m].sum() / rows[m].sum()
                print(f"{m.sum():,} | {rows[m].sum():,} | {secs[m].sum():.2f} | {per_row:.2f} |")
        sub = sum(s for _, s, m in calls if m != a.n)
        if sub:
            print(f"| the multiscale start's subsampled problems | | | {sub:.2f} | |")
        print()
        calls.clear()


if __name__ == "__main__":
    main()

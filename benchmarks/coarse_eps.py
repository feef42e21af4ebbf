"""The multiscale cold start's first epsilon, swept: full passes, bids and seconds of one cold solve (a table).

    python -m benchmarks.coarse_eps [--sizes 4000,16000] [--dims 2,4,8,16,64] [--shares 0.3,0.1,0.03]
                                    [--sources squashed] [--threads 1]

A cold `lvm.ot.auction.auction` of `lvm.ot.bench.problem(n, d, source)` for each share s: the first epsilon
is s times the median disagreement of the two coarse price estimates (`coarse_prices`), in every
dimension (the solver's own rule, `COARSE_EPS` and `COARSE_EPS_LOW_D`, is the row marked "rule").
Passes (full rows scored / n) and bids are deterministic on one machine; the seconds are one run.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

import lvm.ot.auction as A
from lvm.ot.bench import problem


def cold(src: torch.Tensor, tgt: torch.Tensor, share: float | None) -> tuple[float, A.AuctionOutput]:
    """One cold solve with the first-epsilon share forced to `share` (None: the solver's rule)."""
    saved = A.COARSE_EPS, A.COARSE_EPS_LOW_D
    if share is not None:
        A.COARSE_EPS, A.COARSE_EPS_LOW_D = share, (0, share)
    try:
        t0 = time.perf_counter()
        out = A.auction(src, tgt)
        return time.perf_counter() - t0, out
    finally:
        A.COARSE_EPS, A.COARSE_EPS_LOW_D = saved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="4000,16000")
    p.add_argument("--dims", default="2,4,8,16,64")
    p.add_argument("--shares", default="0.3,0.1,0.03")
    p.add_argument("--sources", default="squashed")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    A.auction(torch.randn(64, 2), torch.randn(64, 2))  # compile before timing
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {a.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.2f} at the start\n")
    print("| n | d | source | first epsilon share | passes | bids | seconds | certified gap |")
    print("|---|---|---|---|---|---|---|---|")
    for source in a.sources.split(","):
        for n in map(int, a.sizes.split(",")):
            for d in map(int, a.dims.split(",")):
                src, tgt = problem(n, d, source)
                for share in [float(s) for s in a.shares.split(",")] + [None]:
                    seconds, out = cold(src, tgt, share)
                    label = f"{share:g}" if share is not None else "rule"
                    print(f"| {n:,} | {d} | {source} | {label} | {out.passes:.2f} | {out.bids:,} | {seconds:.2f} | "
                          f"{out.rel_gap:.1e} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()

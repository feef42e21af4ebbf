"""The multiscale start's c-transform by block size (a printed table).

    python -m benchmarks.ctransform [--n 60000] [--d 64] [--cols 32,64,139,279] [--reps 3] [--threads 1]

`lvm.ot.auction._ctransform` of n / 8 sampled sources (`COARSE_FRACTION`) and random values over all n targets of
`lvm.ot.bench.problem(n, d, "squashed")`, the second and larger of the two c-transforms of each subsampled
problem, for blocks of each number of targets; `CT_BLOCK_ELEMS` // (n / 8) is the block the solver uses.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--cols", default="32,64,139,279")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from lvm.ot.auction import COARSE_FRACTION, CT_BLOCK_ELEMS, _ctransform
    from lvm.ot.bench import problem

    src, tgt = problem(a.n, a.d, "squashed")
    g = torch.Generator().manual_seed(0)
    m = a.n // COARSE_FRACTION
    sources = src[torch.randperm(a.n, generator=g)[:m]].contiguous()
    values = torch.randn(m, dtype=torch.float64, generator=g)
    cols = [int(c) for c in a.cols.split(",")]
    times: dict[int, list[float]] = {c: [] for c in cols}
    for _ in range(a.reps):  # interleaved, so that a change in the machine's speed falls on every size
        for c in cols:
            t0 = time.perf_counter()
            _ctransform(sources, tgt, values, c)
            times[c].append(time.perf_counter() - t0)
    print(f"n = {a.n:,}, d = {a.d}, m = {m:,} sources, {a.threads} torch thread(s); the solver's block: "
          f"{max(1, CT_BLOCK_ELEMS // m)} targets\n\n| targets per block | MB per block | median s | all runs (s) |\n"
          "|---|---|---|---|")
    for c in cols:
        print(f"| {c} | {4 * m * c / 1e6:.1f} | {statistics.median(times[c]):.2f} | "
              + ", ".join(f"{t:.2f}" for t in times[c]) + " |")


if __name__ == "__main__":
    main()

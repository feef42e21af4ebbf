"""Where one certified OT solve spends its time, phase by phase, beside one n x n x d sgemm (a printed table).

    python -m benchmarks.ot_pass [--n 60000] [--d 64] [--threads 2] [--baseline DIR]

A cold solve of `lvm.ot.bench.problem(n, d, "squashed")`, then two warm ones, each after a 1 % drift of the
sources (targets and solver state kept: the second warm solve is the first to find candidate lists made at
prices near its own, as every later correction of a training run does), with `AuctionOutput.seconds`: the cold start's subsampled problems
(`coarse`, everything they do), the row-block matrix products, the
candidate-list selection, the bidding (with the lists it rebuilds itself), the certificate and the rest. The
reference is one full n x n x d float32 product in row blocks (`bench_ot.sgemm_seconds`), measured in the
same process. `--baseline DIR` runs the same solves on another checkout's `lvm` (e.g. a `git worktree` of an
older commit) in a child process, timing its `TopK.refresh` (products and selection together) and
`bid_rounds` by wrapping them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

import torch

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
import lvm.ot.auction as A
spent = {"refresh": 0.0, "bid": 0.0}
def timed(name, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter(); out = fn(*a, **k); spent[name] += time.perf_counter() - t0; return out
    return wrapper
A.TopK.refresh = timed("refresh", A.TopK.refresh)
A.bid_rounds = timed("bid", A.bid_rounds)
n, d = int(sys.argv[1]), int(sys.argv[2])
g = torch.Generator().manual_seed(0)
src = torch.tanh(torch.randn(n, d, generator=g) + 1.0); tgt = torch.randn(n, d, generator=g)
A.auction(src[:64], tgt[:64])
out = {}
for kind in ("cold", "warm 1", "warm 2"):
    for key in spent: spent[key] = 0.0
    if kind != "cold":
        src = src + 0.01 * src.std(0) * torch.randn(src.shape, generator=g)
    t0 = time.perf_counter()
    if kind == "cold":
        res = A.auction(src, tgt)
    else:
        lists = {"lists": res.lists} if hasattr(res, "lists") else {}   # older checkouts kept no lists
        res = A.auction(src, tgt, prices=res.prices, epsilon=res.epsilon, assignment=res.assignment, **lists)
    out[kind] = {"seconds": time.perf_counter() - t0, "passes": res.passes, "gap": res.rel_gap, **spent}
print(json.dumps(out))
"""


def _solve(n: int, d: int) -> dict:
    from lvm.ot.auction import auction
    from lvm.ot.bench import drift_and_solve, problem
    src, tgt = problem(n, d, "squashed")
    auction(src[:64], tgt[:64])                                   # compile and load before timing
    g = torch.Generator().manual_seed(1)
    out, res = {}, None
    for kind in ("cold", "warm 1", "warm 2"):
        src, res, seconds = drift_and_solve(src, tgt, res, g)
        out[kind] = {"seconds": seconds, "passes": res.passes, "gap": res.rel_gap, "bids": res.bids, **res.seconds}
    return out


def _table(n: int, d: int, runs: dict, sgemm: float) -> str:
    flop = 2 * n * n * d
    lines = [f"One sgemm (n x n x d = {n:,} x {n:,} x {d}, {flop / 1e9:.0f} GFLOP, row blocks of 4,096): "
             f"**{sgemm:.2f} s** ({flop / sgemm / 1e9:.1f} GFLOP/s).", ""]
    for kind, r in runs.items():
        lines += [f"**{kind}**: {r['seconds']:.2f} s = {r['seconds'] / sgemm:.2f} x sgemm; {r['passes']:.2f} full "
                  f"passes, {r['bids']:,} bids, certified gap {r['gap']:.1e}.", "",
                  "| phase | seconds | share | rate |", "|---|---|---|---|"]
        scores = r["passes"] * n * n
        rates = {"product": f"{r['passes'] * flop / max(r['product'], 1e-9) / 1e9:.1f} GFLOP/s",
                 "select": f"{r['select'] / max(scores, 1) * 1e9:.2f} ns per score "
                           f"({4 * scores / max(r['select'], 1e-9) / 1e9:.1f} GB/s of float32 scores)",
                 "bid": f"{r['bids'] / max(r['bid'], 1e-9) / 1e6:.2f} M bids/s (with the lists it rebuilds)"}
        for phase in ("coarse", "product", "select", "bid", "certificate", "other"):
            lines.append(f"| {phase} | {r[phase]:.2f} | {r[phase] / r['seconds']:.0%} | {rates.get(phase, '')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline", default="", help="a checkout whose lvm to time the same way (child process)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from lvm.ot.bench import problem, sgemm_seconds
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{a.threads} threads; load average at start {os.getloadavg()[0]:.2f}\n", flush=True)
    src, tgt = problem(a.n, a.d, "squashed")
    sgemm = sgemm_seconds(src, tgt)
    del src, tgt
    print(_table(a.n, a.d, _solve(a.n, a.d), sgemm), flush=True)
    if a.baseline:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(a.baseline)}
        res = subprocess.run([sys.executable, "-c", CHILD, str(a.n), str(a.d), str(a.threads)], env=env,
                             cwd=a.baseline, capture_output=True, text=True, check=True)  # `-c` puts the cwd first
        base = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"**baseline** ({a.baseline}; the same problem, generated by its own code path):\n\n"
              "| solve | seconds | x sgemm | passes | refresh (products + selection) | bid | rest |\n"
              "|---|---|---|---|---|---|---|")
        for kind, r in base.items():
            print(f"| {kind} | {r['seconds']:.2f} | {r['seconds'] / sgemm:.2f} | {r['passes']:.2f} | {r['refresh']:.2f} "
                  f"| {r['bid']:.2f} | {r['seconds'] - r['refresh'] - r['bid']:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

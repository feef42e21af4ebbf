"""A cold solve and the warm ones after it, for several values of one of the solver's constants (a printed table).

    python -m benchmarks.ot_sequence [--n 60000] [--d 64] [--warm 4] [--seed 2] [--vary COLD_LISTS=1,2]
                                     [--threads 1]

The problem of `benchmarks.ot_pass` (`lvm.ot.bench.problem(n, d, "squashed")`); each warm solve follows a 1 %
drift of the sources drawn from `--seed`, and starts from the previous solve's prices, assignment and lists,
as a training run's corrections do. `--vary NAME=V1,V2,...` sets the integer constant `lvm.ot.auction.NAME` to
each value in turn, one sequence each (the default compares COLD_LISTS 1, a cold start listing k targets as a
warm one does, with 2; `--vary COARSE_FRACTION=8,12,16 --warm 0` times cold solves alone). Passes (full rows
scored / n, the multiscale start's work included) depend only on the problem and the code, not on the
machine's load; seconds do.
"""
from __future__ import annotations

import argparse

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--warm", type=int, default=4)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--vary", default="COLD_LISTS=1,2", help="NAME=V1,V2,...: an integer constant of lvm.ot.auction")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import lvm.ot.auction as A
    from lvm.ot.bench import drift_and_solve, problem

    name, values = a.vary.split("=")
    if not isinstance(getattr(A, name, None), int):
        p.error(f"--vary: lvm.ot.auction has no integer constant {name!r}")
    start, tgt = problem(a.n, a.d, "squashed")
    A.auction(start[:64], tgt[:64])  # compile
    print(f"n = {a.n:,}, d = {a.d}, drift seed {a.seed}, {a.threads} torch thread(s)\n")
    cols = [name, "cold: s (passes)"] + [f"warm {i + 1}" for i in range(a.warm)]
    cols += ["warm passes, all", "warm s, mean"] if a.warm else []
    print("| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|")
    for value in (int(v) for v in values.split(",")):
        setattr(A, name, value)
        g = torch.Generator().manual_seed(a.seed)
        src, res, cells, warm = start, None, [], []
        for i in range(a.warm + 1):
            src, res, seconds = drift_and_solve(src, tgt, res, g)
            cells.append(f"{seconds:.1f} ({res.passes:.2f})")
            if i:
                warm.append((seconds, res.passes))
        tail = f" | {sum(w[1] for w in warm):.2f} | {sum(w[0] for w in warm) / len(warm):.1f}" if warm else ""
        print(f"| {value} | " + " | ".join(cells) + tail + " |", flush=True)


if __name__ == "__main__":
    main()

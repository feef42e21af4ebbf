"""One OT correction split over N ranks (lvm.distributed.auction) or in one process (lvm.ot.auction): JSON lines.

    torchrun --standalone --nproc_per_node 2 -m benchmarks.dist_ot --points 60000 --dim 64   # 2 ranks
    python -m benchmarks.dist_ot --points 60000 --dim 64                                      # one process

The protocol of the warm cells of `lvm bench ot`: `problem(n, d, "squashed")`, a cold solve, then a
1 % drift of the sources with the targets and the solver state kept, and a warm solve: the one
that counts in training, where every correction but the first is warm. Each rank prints its cold
and warm seconds, passes, certified gap and bids; on several ranks also the collectives of the
warm solve and the bytes this rank put into them, and the time of its block of one full pass
(an m x n x d float32 product in row blocks, `bench_ot.sgemm_seconds`), and where the warm solve's
time went: `score` (this rank's full rows: products and list selection), `lists` (that plus the
all-gather of the lists), `jacobi` (the Jacobi rounds: each rank's own rows' bids, their all-gather,
the lists rebuilt after each round) with its rounds and bids, `bid` (the compiled end-game bidding, the
same on every rank); `cold_spent` the same for the cold solve. One thread per process unless --threads
says otherwise.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from lvm import distributed
from lvm.ot.bench import problem, sgemm_seconds
from lvm.config import OTConfig
from lvm.ot import solve


def _run(n: int, d: int) -> dict:
    from lvm import auction, auction_dist

    zero = {"score": 0.0, "lists": 0.0, "jacobi": 0.0, "jacobi_rounds": 0, "jacobi_bids": 0, "bid": 0.0, "bids": 0,
            "rebuilt_in_loop": 0}
    spent = dict(zero)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            spent[name] += time.perf_counter() - t0
            return result
        return wrapper

    auction.TopK.refresh = timed("score", auction.TopK.refresh)
    auction_dist._Lists.refresh = timed("lists", auction_dist._Lists.refresh)

    def counted(fn):  # the bidding's time, its bids and the rows it rebuilt one by one inside the compiled loop
        fn = timed("bid", fn)

        def wrapper(*args):
            top, n_stale, bids, rebuilt = fn(*args)
            spent["bids"] += bids
            spent["rebuilt_in_loop"] += rebuilt
            return top, n_stale, bids, rebuilt
        return wrapper

    auction_dist.bid_rounds = counted(auction_dist.bid_rounds)
    jacobi = timed("jacobi", auction_dist._jacobi)

    def rounds(*args):
        bids, n = jacobi(*args)
        spent["jacobi_bids"] += bids
        spent["jacobi_rounds"] += n
        return bids, n

    auction_dist._jacobi = rounds
    if not distributed.launched():
        auction.bid_rounds = counted(auction.bid_rounds)
    src, tgt = problem(n, d, "squashed")
    cfg = OTConfig("fast")
    out: dict = {"n": n, "d": d, "threads": torch.get_num_threads()}
    if distributed.launched():
        comm = distributed.init()
        start, stop = comm.bounds(n)
        calls: dict[str, list] = {}
        gather = comm.allgather

        def counted(a: np.ndarray, what: str = "all-gather") -> np.ndarray:  # collectives and bytes sent
            c = calls.setdefault(what, [0, 0])
            c[0], c[1] = c[0] + 1, c[1] + a.nbytes
            return gather(a, what)

        comm.allgather = counted
        solver = lambda s, warm=None: auction_dist.solve(s[start:stop], tgt, cfg, comm, warm=warm)  # noqa: E731
        out.update(rank=comm.rank, world=comm.world)
    else:
        solver, calls, start, stop = (lambda s, warm=None: solve(s, tgt, cfg, warm=warm)), {}, 0, n  # noqa: E731
        out.update(rank=0, world=1)
    t0 = time.perf_counter()
    res = solver(src)
    out.update(cold_s=time.perf_counter() - t0, cold_passes=res.iterations, cold_gap=res.gap, cold_spent=dict(spent))
    src = src + 0.01 * src.std(0) * torch.randn(src.shape, generator=torch.Generator().manual_seed(1))
    calls.clear()
    spent.update(zero)
    t0 = time.perf_counter()
    res = solver(src, res.warm_start)
    out.update(warm_s=time.perf_counter() - t0, warm_passes=res.iterations, warm_gap=res.gap,
               converged=res.converged, cost=res.cost, collectives={k: v for k, v in calls.items()},
               warm_spent=dict(spent))
    out["block_pass_s"] = sgemm_seconds(src[start:stop], tgt)  # this rank's share of one full pass
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=60000, help="n (torchrun would take --n for its own)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps(_run(a.points, a.dim)), flush=True)
    distributed.close()


if __name__ == "__main__":
    main()

"""The OT correction across ranks: the auction with its scoring split over ranks, and a certificate.

The problem and its dual are those of `lvm.ot.auction`: match n sources to n targets by

    max_sigma  sum_i a_{i sigma(i)},   a_ij = <z_hat_i, z_j>,
    D(p) = sum_i max_j (a_ij - p_j) + sum_j p_j  >=  sum_i a_{i sigma(i)}  for every p and sigma.

The sources (the chains) live on the ranks in contiguous blocks (`lvm.distributed.bounds`); the
targets are global and fixed. A correction first all-gathers the sources (n d float32), so every
rank holds both point sets. What costs is scoring: a candidate list (a row's k best targets and a
bound on all the others, `lvm.ot.auction.TopK`) is rebuilt from a full row of n scores, 2 n d
flops, and a correction rebuilds every row at least once. So the rows to rebuild are split evenly
over the ranks, each scores its share against all targets, and the lists are all-gathered (8 k + 8
bytes a row): every rank then holds every list, the prices p (float64), the owner of every target
and every row's target, identical on every rank.

Bids come in two regimes. While many rows are unassigned (the start of every epsilon phase), each rank
bids for its own unassigned rows at once, a Jacobi round: row i bids for its best listed target j1 =
argmax_j (a_ij - p_j) the price p_j1 + (v1 - max(v2, bound_i)) + eps, v1 and v2 its best and second-best
values. The bids, (row, target, price) records, are all-gathered, and every rank reduces them to the
best bid per target, ties going to the lowest row (one collective of a few thousand records a round; two
all-reduces of n-long price and winner arrays made the rounds a third slower here); every rank then
applies the same winners, so prices, the owner of every target and every row's target stay identical on
every rank, and each displaced owner is unassigned again. A row whose list cannot prove its best target
(v1 < bound_i: prices rose on its listed targets) sits the round out, and the rows waiting so are
rebuilt after it, split over the ranks. Rounds are used where a row's rebuild costs over `JACOBI_ELEMS`
multiply-adds (n d), since what they save is rebuilds split over the ranks, and last while at least
`JACOBI_MIN` of the rows are unassigned. After that the end game is a chain of displacements one row
after another, where a round per displacement would cost a collective's latency each; so the rest of the
phase bids by the sequential (Gauss-Seidel) rule of `lvm.ot.auction`, the same bids in the same order on
every rank: waiting rows are rebuilt in a batch split over the ranks (one all-gather), or, a few at a
time, by every rank itself inside the compiled loop of `lvm.ot.auction.bid_rounds` (the same compiled code on the
same data, so every rank computes the same list). Every pair keeps eps-complementary slackness in both
regimes, epsilon-scaling divides eps by `scaling` between phases, and the solve stops once the
certificate D(p) - primal puts the relative gap on the transport cost at most `tol`: each rank sums its
own rows' share of D(p) and of the primal, and the shares are all-reduced (added in rank order, so every
rank stops at the same phase).

Why the end game is not Jacobi too: it was built so first, and is correct, but measured on the 2-core
machine (two ranks, n = 20,000, d = 64, warm) it took 25,887 rounds, 78 s against 5.1 s for one
process (benchmarks/distributed.md).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..ot.auction import COARSE_MIN, AuctionOutput, bid_rounds, own_values, relative_gap, coarse_prices
from ..ot.candidates import BLOCK_ELEMS, CandidateLists, TopK
from ..config import OTConfig
from .comm import Comm
from ..ot.solve import OTResult, Progress, WarmStart


NO_LIMIT = 2**62  # bids per compiled call: every rank must stop at the same bid, so none is cut short
JACOBI_MIN = 0.01  # Jacobi rounds while at least this share of the rows is unassigned (benchmarks/distributed.md)
JACOBI_ELEMS = 2**20  # ... where a row's rebuild costs more multiply-adds than this (n d): what a round saves is
#                      rebuilds split over the ranks; for cheaper rows its collective and numpy cost more


class _Lists(TopK):
    """Every row's candidate list, identical on every rank; a batch of rows is scored a share per rank."""

    def __init__(self, source: torch.Tensor, target: torch.Tensor, k: int, chunk: int, comm: Comm):
        super().__init__(source, target, k, chunk)
        self.comm = comm
        self.spread = 0                                         # rows scored with the work split over ranks

    def refresh(self, rows: np.ndarray, p: np.ndarray) -> None:
        """Rescore `rows` (the same on every rank) at prices p: each rank a share, the lists all-gathered."""
        share = np.array_split(rows, self.comm.world)[self.comm.rank]
        super().refresh(share, p)
        k = self.idx.shape[1]
        packed = np.concatenate([self.idx[share].astype(np.int32).view(np.uint8).reshape(len(share), 4 * k),
                                 self.score[share].view(np.uint8).reshape(len(share), 4 * k),
                                 self.bound[share].view(np.uint8).reshape(len(share), 8)], axis=1)
        every = self.comm.allgather(packed, "gathering candidate lists")  # the shares in rank order: `rows`
        self.idx[rows] = np.ascontiguousarray(every[:, :4 * k]).view(np.int32)
        self.score[rows] = np.ascontiguousarray(every[:, 4 * k:8 * k]).view(np.float32)
        self.bound[rows] = np.ascontiguousarray(every[:, 8 * k:]).view(np.float64)[:, 0]
        self.spread += len(rows)


def _jacobi(lists: _Lists, p: np.ndarray, p32: np.ndarray, assign: np.ndarray, owner: np.ndarray,
            fresh: np.ndarray, eps: float, comm: Comm, least: float) -> tuple[int, int]:
    """Jacobi rounds of bidding while many rows are unassigned (see the module docstring).

    Rounds go on while at least `least` rows are unassigned. Updates p, p32, assign, owner and fresh in
    place, identically on every rank. Returns (bids, rounds).
    """
    lo, hi = comm.bounds(len(p))
    bids = rounds = 0
    while len(every := np.flatnonzero(assign < 0)) >= least:
        free = every[(every >= lo) & (every < hi)]                      # this rank's unassigned rows
        vals = lists.score[free] - p[lists.idx[free]]                    # (f, k) float64 values of the lists
        at = np.arange(len(free))
        best = vals.argmax(1)
        v1, j1 = vals[at, best], lists.idx[free, best]
        vals[at, best] = -np.inf
        v2, bound = vals.max(1), lists.bound[free]
        proven = (v1 >= bound) | fresh[free]
        second = np.maximum(v2, bound)
        second = np.where(second == -np.inf, v1, second)               # a single target in all: nothing to outbid
        bid = np.where(proven, p[j1] + np.maximum(v1 - second, 0.0) + eps, -np.inf)
        j1 = np.where(proven, j1, -1)                                  # -1: waits for its list to be rebuilt
        every_bid = comm.allgather(np.stack([free, j1, bid], 1), "the round's bids")  # (row, target, price)
        waiting = every_bid[every_bid[:, 1] < 0, 0].astype(np.int64)
        made = every_bid[every_bid[:, 1] >= 0]
        made = made[np.lexsort((made[:, 0], -made[:, 2], made[:, 1]))]  # by target, highest price, lowest row
        top = made[np.r_[True, made[1:, 1] != made[:-1, 1]]] if len(made) else made  # the best bid per target
        sold, winner = top[:, 1].astype(np.int64), top[:, 0].astype(np.int64)
        prev = owner[sold]
        assign[prev[prev >= 0]] = -1
        owner[sold], assign[winner] = winner, sold
        p[sold] = top[:, 2]
        p32[sold] = p[sold]
        fresh[every] = False  # every rank's bidders; the rows that waited were not fresh (proven otherwise)
        bids += len(made)
        rounds += 1
        if len(waiting):
            lists.refresh(waiting, p)
            fresh[waiting] = True
        if not len(sold) and not len(waiting):                     # cannot happen; never loop for nothing
            break
    return bids, rounds


def auction(source: torch.Tensor, target: torch.Tensor, comm: Comm, *, tol: float = 1e-4, scaling: float = 5.0,
            k: int = 0, chunk: int = 4096, prices: torch.Tensor | None = None, epsilon: float | None = None,
            assignment: torch.Tensor | None = None, kept: CandidateLists | None = None,
            max_passes: float = 200.0, coarse: int = COARSE_MIN, jacobi: bool | None = None) -> AuctionOutput:
    """Maximise sum_i <source_i, target_sigma(i)> over permutations, the sources split across ranks.

    Every rank calls this with its own block of sources; the other arguments are the same on every rank.

    Args:
        source: (m, d) this rank's rows: global rows [start, start + m) with the blocks in rank order.
        target: (n, d) all targets (n = the sum of m over ranks), on the same device as `source`.
        comm: the process group (`lvm.distributed.init`).
        tol, scaling, k, chunk, max_passes, coarse: as in `lvm.ot.auction.auction` (for the global n).
        jacobi: bid in Jacobi rounds while JACOBI_MIN of the rows or more are unassigned (None: if n d is over
            JACOBI_ELEMS).
        prices, epsilon, assignment: a warm start (global (n,) prices and assignment), as a previous
            call on the same targets returned them.
        kept: that call's `lists`: with prices, only the lists that cannot prove their best entry after the
            drift are rescored (`lvm.ot.candidates.CandidateLists`), the same rows on every rank.

    Returns:
        An AuctionOutput, identical on every rank, whose assignment (n,) is global: the target of each
        source row, -1 if unassigned; a permutation when `converged`. `passes` counts full rows scored
        by all ranks together, over n.
    """
    m, d = source.shape
    everything = torch.from_numpy(comm.allgather(source.detach().float().cpu().numpy(), "gathering the sources"))
    n = len(everything)
    if n != len(target):
        raise ValueError(f"the ranks hold {n} sources in all but there are {len(target)} targets")
    k = k or (128 if n * d > 2**20 else 32)
    src_t, tgt_t = everything.to(source.device).contiguous(), target.float().contiguous()  # (n, d) each
    src, tgt = src_t.double().cpu().numpy(), tgt_t.double().cpu().numpy()
    norms = float((src**2).sum(1).mean() + (tgt**2).sum(1).mean())
    work = 0.0
    if prices is None and coarse and n >= max(coarse, 16):  # rank 0 solves the subsampled problems
        first = np.zeros(n + 2)
        if comm.rank == 0:
            p0, eps0, work = coarse_prices(src_t, tgt_t, tol=max(tol, 1e-3))
            first[:n], first[n], first[n + 1] = p0, eps0, work
        first = comm.broadcast(torch.from_numpy(first), "the coarse start's prices").numpy()
        p, epsilon, work = first[:n].copy(), float(first[n]), float(first[n + 1])
    elif prices is None:  # p_j = ||z_j||^2 / 2: every source first bids for its nearest target
        p = (tgt**2).sum(1) / 2
    else:
        p = prices.double().cpu().numpy().copy()
    assign = np.full(n, -1, dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    if assignment is not None and bool((assignment >= 0).all()):
        assign = assignment.cpu().numpy().astype(np.int64).copy()
        owner[assign] = np.arange(n)
    lists = _Lists(src_t, tgt_t, k, max(1, min(chunk, BLOCK_ELEMS // n)), comm)
    rows = np.arange(n)
    if prices is not None and kept is not None and kept.idx.shape == lists.idx.shape and kept.source.shape == src.shape:
        lists.reuse(kept, src, tgt)  # the same arithmetic on the same gathered data: identical on every rank
        rows = lists.unproven(p)
        rows = np.arange(n) if len(rows) > n // 2 else rows
    if len(rows):
        lists.refresh(rows, p)
    if epsilon is None or not math.isfinite(epsilon):
        eps = norms / 20
    elif prices is None or assignment is None:
        eps = epsilon
    else:  # warm: start where the drift left the kept pairs, so that about a tenth of them rebid
        slack = lists.row_max_upper(p) - (own_values(src, tgt, assign) - p[assign])
        eps = max(epsilon, float(np.quantile(slack, 0.9)))
    stack, stale = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    src32, tgt32 = src.astype(np.float32), tgt.astype(np.float32)
    tgt32_t, p32 = np.ascontiguousarray(tgt32.T), p.astype(np.float32)  # p32 follows p: bids update both
    # fewer stale rows than this are rebuilt by every rank in the compiled loop (as lvm.ot.auction does on
    # one core): cheaper than a collective's latency plus a share of the rows
    min_batch = int(min(max(2**24 // (n * d), 1), 256))
    bids, rebuilt, rounds, rel_gap, primal, dual = 0, 0, 0, math.inf, -math.inf, math.inf
    fresh = np.zeros(n, dtype=np.bool_)                 # lists rebuilt since their row last bid
    lo, hi = comm.bounds(n)
    while True:
        # 1. eps-CS at the new epsilon: release the pairs that are not within eps of their best
        own = own_values(src, tgt, assign) - np.where(assign >= 0, p[assign], 0.0)
        drop = (assign >= 0) & (own < lists.row_max_upper(p) - eps)
        owner[assign[drop]] = -1
        assign[drop] = -1
        # 2. bid until every row holds a target: Jacobi rounds while many are free, then the end game
        if comm.world > 1 and (n * d > JACOBI_ELEMS if jacobi is None else jacobi):
            b, r = _jacobi(lists, p, p32, assign, owner, fresh, eps, comm, max(JACOBI_MIN * n, 2))
            bids, rounds = bids + b, rounds + r
        free = np.flatnonzero(assign < 0)
        top = len(free)
        stack[:top] = free
        while top and (lists.spread + rebuilt) / n + work < max_passes:
            top, n_stale, b, r = bid_rounds(stack, top, lists.idx, lists.score, lists.bound, fresh, p, p32, lists.groups,
                                      assign, owner, eps, stale, min_batch, src32, tgt32, tgt32_t, NO_LIMIT)
            bids, rebuilt = bids + b, rebuilt + r
            if n_stale == 0:
                break
            rows = stale[:n_stale].copy()
            lists.refresh(rows, p)
            fresh[rows] = True
            stack[:n_stale] = rows
            top = n_stale
        # 3. the certificate (weak duality) on the mean squared-distance cost: each rank's rows' share, all-reduced
        done = bool((assign >= 0).all())
        if done:
            for attempt in range(2):
                mine = [own_values(src[lo:hi], tgt, assign[lo:hi]).sum(), lists.row_max_upper(p, slice(lo, hi)).sum()]
                primal, row_max = (float(v) for v in comm.sum(mine, "the certificate"))
                dual = row_max + float(p.sum())
                rel_gap = relative_gap(primal, dual, norms, n)
                unproven = lists.unproven(p)
                if rel_gap <= tol or attempt or not len(unproven):
                    break
                lists.refresh(unproven, p)  # rows known only by a loose (kept) bound: their exact maxima
        if not done or rel_gap <= tol or eps < 1e-12 * max(norms, 1.0):
            break
        eps /= scaling
    dev = source.device
    return AuctionOutput(torch.from_numpy(assign).to(dev), torch.from_numpy(p).to(dev), primal, dual, rel_gap,
                         eps, (lists.spread + rebuilt) / n + work, bids, done and rel_gap <= tol,
                         lists=CandidateLists(src32, lists.idx, lists.bound), rounds=rounds)


def solve(source: torch.Tensor, target: torch.Tensor, cfg: OTConfig, comm: Comm, warm: WarmStart | None = None,
          progress: Progress | None = None) -> OTResult:
    """`lvm.ot.solve_fast` across ranks: this rank's (m, d) sources against all (n, d) targets.

    Returns an OTResult identical on every rank, with the global (n,) assignment and duals.

    Raises:
        ValueError: a solver other than "fast" (Alg. 2 and the exact solver need the whole population).
    """
    n = len(target)
    start, stop = comm.bounds(n)  # this rank's block: the trainer's layout, lvm.distributed.bounds
    if len(source) != stop - start:
        raise ValueError(f"{comm}: holds {len(source)} sources, not its block of {n} ({stop - start})")
    if cfg.solver != "fast":
        raise ValueError(f"the {cfg.solver!r} OT solver runs in one process only; on several processes use the "
                         "fast (auction) solver")
    if progress is not None:
        progress(0, 1.0)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fc = cfg.fast
        out = auction(source, target, comm, tol=fc.tol, scaling=fc.scaling, k=fc.candidates, chunk=cfg.chunk,
                      prices=None if warm is None or warm.h is None else -warm.h.double(),
                      epsilon=None if warm is None else warm.epsilon,
                      assignment=None if warm is None else warm.assignment,
                      kept=None if warm is None else warm.lists, max_passes=cfg.max_iter, coarse=fc.coarse)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    unmatched = float((out.assignment < 0).double().mean())
    if progress is not None:
        progress(max(1, round(out.passes)), unmatched)
    if not out.converged:
        warnings.warn(f"OT (distributed auction) stopped after {out.passes:.1f} passes with a certified gap of "
                      f"{out.rel_gap:.2g} (tol {cfg.fast.tol}) and {unmatched:.1%} unmatched; unmatched sources "
                      f"are left uncorrected", RuntimeWarning, stacklevel=3)
    a = out.assignment[start:stop].cpu()
    m = a >= 0
    sq = float((source.cpu()[m] - target.cpu()[a[m]]).double().pow(2).sum()) if bool(m.any()) else 0.0
    matched_sq, matched = comm.sum([sq, float(m.sum())], "the matched cost")
    cost = matched_sq / matched if matched else float("nan")
    return OTResult(out.assignment.cpu(), unmatched, cost, out.passes, out.dual / n, out.converged,
                    (-out.prices).float().cpu(), gap=out.rel_gap, epsilon=out.epsilon, lists=out.lists)

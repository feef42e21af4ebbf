"""The auction algorithm with epsilon-scaling: a certified solver for the OT step.

The correction matches n sources {z_hat_i} to n targets {z_j} by

    max_sigma  sum_i a_{i sigma(i)},   a_ij = <z_hat_i, z_j>,

whose dual is Eq. 12 with prices p_j = -h_j:

    D(p) = sum_i max_j (a_ij - p_j) + sum_j p_j  >=  sum_i a_{i sigma(i)}  for every p and sigma.

Bertsekas' auction is coordinate ascent on D. An unassigned source i bids for
its best target j1 = argmax_j (a_ij - p_j) and raises p_j1 by (v1 - v2) + eps,
v1 and v2 being its best and second-best values; the target's previous owner
becomes unassigned. Every assigned pair keeps eps-complementary slackness,
a_{i sigma(i)} - p_{sigma(i)} >= v1_i - eps, so a full assignment is within
n * eps of the optimum. Epsilon-scaling divides eps by `scaling` after each
phase, keeping the prices, and stops once the *certificate*
D(p) - sum_i a_{i sigma(i)} puts the relative gap on the transport cost at
most `tol` (weak duality: no exact solver is needed to know it).

Work and memory. The n x n score matrix is never formed: each source keeps a
list of its k best targets with their raw scores, and `bound`, the value of
its (k+1)-th best target when the list was made. Prices only rise, so no
unlisted target can exceed `bound`: while the listed best is >= bound it is
the exact best, and max(v2, bound) is a valid second value (it can only make
the increment smaller). A list is rebuilt from a full row of scores only when
that test fails; full rows come in blocks from matrix products (float32
scores, float64 prices, on the inputs' device), so memory is O(n * k + block).
On the CPU each block's lists are selected while it is still in cache by
`lvm.ot.candidates.select_row`: vectorised sweeps (column-wise group maxima, a bisected
threshold, a chunked count) and a quickselect of the ~1.2 k survivors, a
fraction of the product's own time (benchmarks/ot-pass.md); a GPU uses
torch.topk. The bids themselves are sequential (Gauss-Seidel) and run
compiled by numba.

Warm starts keep the lists too (`CandidateLists`): sources that moved by
delta_i keep valid lists once each bound is raised by |delta_i| max_j |t_j|,
so a correction after a small drift rescores n k listed pairs and rebuilds
only the lists that can no longer prove their best entry, instead of a full
pass of n^2 scores.

Cold starts of large problems are multiscale (`coarse_prices`): two random
subsamples of an eighth of the sources and targets are solved first (the
same way, so recursively), each solution's prices are extended to every
target by the c-transform p_j = max_i (a_ij - u_i) over its sources, and the
full auction starts from their mean, at an epsilon of 0.03 times the median
disagreement of the two estimates (0.3 for d < 8; benchmarks/coarse-eps.md;
benchmarks/ot-cold.md compares the multiscale start with the plain one).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from numba import njit

from .candidates import CandidateLists, TopK, row_scores, select_row

COARSE_MIN = 4000  # cold starts from this many points on begin from subsampled problems' prices
COARSE_FRACTION = 8  # the subsamples hold 1 / this of the points
COARSE_EPS = 0.03  # the first epsilon, as a share of the median disagreement of the two coarse estimates:
#                   smaller means fewer lists made stale by large early bids (benchmarks/coarse-eps.md) ...
COARSE_EPS_LOW_D = (8, 0.3)  # ... except below this d, where near-ties turn a small first epsilon into price wars
CT_BLOCK_ELEMS = 2**19  # scores per block of a coarse c-transform (2 MB): at m = 7,500 sources, blocks of 64 targets
#                        took 0.76 s for all 60,000 and blocks of 279 took 1.34 s here (benchmarks/ctransform.py)
BID_ROUND = 1_000_000  # bids per compiled call at most: `interrupt` is asked at least this often
COLD_LISTS = 2  # a cold start of a large problem lists this many times k targets: its prices move furthest from
#                where its lists were made (n = 60,000, d = 64: about 2,000 rows rebuilt after its first full pass
#                instead of about 17,000); the lists it returns for the next warm start are cut back to k
#                (benchmarks/ot-pass.md)
MIN_BATCH_ELEMS = 2**20  # stale lists rebuilt in the compiled loop: fewer than this / (n * d) (see auction)


@dataclass
class AuctionOutput:
    """What `auction` returns; `ot.solve_fast` wraps it into an OTResult."""

    assignment: torch.Tensor   # (n,) target of each source, -1 if left unassigned
    prices: torch.Tensor       # (n,) float64 p_j = -h_j
    primal: float              # sum_i a_{i sigma(i)}, float64
    dual: float                # D(p) >= the optimum of the primal
    rel_gap: float             # certified relative gap on the mean squared-distance cost
    epsilon: float             # the last phase's epsilon
    passes: float              # full rows scored / n
    bids: int                  # bids made in all phases
    converged: bool            # everything assigned and rel_gap <= tol
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # wall time per phase (see `auction`)
    lists: CandidateLists | None = None  # the candidate lists at the end, for the next solve on these targets
    rounds: int = 0            # Jacobi rounds of bidding across ranks (lvm.distributed.auction; 0 in one process)


@njit(cache=True, nogil=True)
def bid_rounds(stack, top, idx, score, bound, fresh, p, p32, groups, assign, owner, eps, stale, min_batch, src, tgt,
         tgt_t, max_bids):  # pragma: no cover - compiled
    """Gauss-Seidel bidding from a stack of unassigned sources.

    A source whose list cannot prove its best target is set aside in `stale`;
    when the stack runs dry, fewer than `min_batch` of them are rebuilt here
    one by one, more are handed back for a blocked matrix product. p32 follows p.
    A source marked in `fresh` (its list just rebuilt) bids without that test,
    so that float noise in a bound can never send a list back for rebuilding.
    Returns (stack height, stale count, bids made, rows rebuilt here).
    """
    n_stale, bids, rebuilt, k = 0, 0, 0, idx.shape[1]
    n = tgt_t.shape[1]
    buf = np.empty(n, dtype=np.float32)
    gm, cj, cv = np.empty(groups, dtype=np.float32), np.empty(n, dtype=np.int64), np.empty(n)
    while bids < max_bids:
        if top == 0:
            if n_stale == 0 or n_stale >= min_batch:
                break
            for s in range(n_stale):
                i = stale[s]
                row_scores(src[i], tgt, tgt_t, buf)
                bound[i] = select_row(buf, p32, p, gm, cj, cv, idx[i], score[i])
                fresh[i] = True
                stack[top] = stale[s]
                top += 1
            rebuilt += n_stale
            n_stale = 0
        top -= 1
        i = stack[top]
        v1, v2, j1 = -np.inf, -np.inf, -1
        for t in range(k):                     # best and second-best value among the listed targets
            j = idx[i, t]
            v = score[i, t] - p[j]
            if v > v1:
                v2, v1, j1 = v1, v, j
            elif v > v2:
                v2 = v
        if v1 < bound[i] and not fresh[i]:     # an unlisted target may be better: rebuild the list first
            stale[n_stale] = i
            n_stale += 1
            continue
        fresh[i] = False
        second = max(v2, bound[i])
        if second == -np.inf:                  # a single target in all: nothing to outbid
            second = v1
        p[j1] += max(v1 - second, 0.0) + eps   # the bid: at least eps above the old price (float noise clipped)
        p32[j1] = p[j1]
        prev = owner[j1]
        owner[j1], assign[i] = i, j1
        bids += 1
        if prev >= 0:
            assign[prev] = -1
            stack[top] = prev
            top += 1
    return top, n_stale, bids, rebuilt


def own_values(src: np.ndarray, tgt: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """a_{i sigma(i)} in float64 (0 where unassigned)."""
    out = np.zeros(len(src))
    m = assign >= 0
    out[m] = np.einsum("ij,ij->i", src[m], tgt[assign[m]])
    return out


def _certified_gap(lists: TopK, p: np.ndarray, primal: float, norms: float) -> tuple[float, float]:
    """(D(p), the certified relative gap on the mean squared-distance cost) of a full assignment worth `primal`.

    Weak duality: D(p) >= the optimum, so cost - lower, lower = norms - 2 D(p) / n, bounds the excess cost.
    """
    dual = float(lists.row_max_upper(p).sum() + p.sum())
    return dual, relative_gap(primal, dual, norms, len(p))


def relative_gap(primal: float, dual: float, norms: float, n: int) -> float:
    """The certified relative gap on the mean squared-distance cost of a full assignment worth `primal`."""
    cost, lower = norms - 2 * primal / n, norms - 2 * dual / n
    return max(cost - lower, 0.0) / lower if lower > 0 else math.inf


def _ctransform(src: torch.Tensor, tgt: torch.Tensor, value: torch.Tensor, cols: int) -> torch.Tensor:
    """max_i (<src_i, tgt_j> - value_i) for every j, in float32 (as a float64 tensor on the CPU).

    Blocks of `cols` targets: each is one (m, cols) product with -value as its bias, reduced over
    the sources by a column-wise maximum while it is still in cache. Float32 is enough: these
    values only start the auction, whose certificate is computed at its own prices.
    """
    out = torch.empty(len(tgt), device=src.device)
    bias = (-value.float()).to(src.device)[:, None]                  # (m, 1)
    tgt_t = tgt.T.contiguous()                                       # (d, n)
    buf = torch.empty(len(src), min(cols, len(tgt)), device=src.device)  # one block, reused
    for s in range(0, len(tgt), cols):
        c = min(cols, len(tgt) - s)
        torch.addmm(bias, src, tgt_t[:, s:s + c], out=buf[:, :c])     # (m, c) scores minus values
        torch.amax(buf[:, :c], 0, out=out[s:s + c])
    return out.double().cpu()


def coarse_prices(source: torch.Tensor, target: torch.Tensor, tol: float, seed: int = 0
                  ) -> tuple[np.ndarray, float, float]:
    """Starting prices for a cold auction from two independent subsampled problems.

    Returns (prices for all targets, first epsilon, work done in full-row equivalents of the whole problem).
    """
    n = len(source)
    m = max(n // COARSE_FRACTION, 2)
    g = torch.Generator().manual_seed(seed)
    cols = max(1, CT_BLOCK_ELEMS // m)
    estimates, work = [], 0.0
    for _ in range(2):
        si = torch.randperm(n, generator=g)[:m].to(source.device)
        ti = torch.randperm(n, generator=g)[:m].to(source.device)
        sub = auction(source[si], target[ti], tol=tol)
        u = _ctransform(target[ti], source[si], sub.prices.cpu(), cols)   # each sampled source's value
        estimates.append(_ctransform(source[si], target, u, cols).numpy())
        work += sub.passes * (m / n) ** 2 + 2 * m / n
    a, b = estimates
    a, b = a - a.mean(), b - b.mean()
    low_d, low_share = COARSE_EPS_LOW_D
    eps = (low_share if source.shape[1] < low_d else COARSE_EPS) * float(np.median(np.abs(a - b)))
    return (a + b) / 2, eps, work


def auction(source: torch.Tensor, target: torch.Tensor, *, tol: float = 1e-4, scaling: float = 5.0,
            k: int = 0, chunk: int = 4096, prices: torch.Tensor | None = None, epsilon: float | None = None,
            assignment: torch.Tensor | None = None, lists: CandidateLists | None = None,
            max_passes: float = 200.0, max_bids: int = 2_000_000_000, coarse: int = COARSE_MIN,
            interrupt: Callable[[], bool] | None = None) -> AuctionOutput:
    """Maximise sum_i <source_i, target_sigma(i)> over permutations, with a certified gap.

    Args:
        source, target: (n, d) float tensors on the same device (scores are computed there).
        tol: stop when the certified relative gap on the mean squared-distance cost is <= tol.
        scaling: epsilon is divided by this after each phase.
        k: targets listed per source between full-row rebuilds; 0 picks 32, or 128 once a full row
            costs over 2**20 multiply-adds (longer lists mean fewer of the costly rebuilds), and for
            such a problem's cold start COLD_LISTS times that (its returned lists are cut to k).
        chunk: at most this many full rows per matrix product (also capped by BLOCK_ELEMS).
        prices, epsilon, assignment: a warm start, from a previous call on the same targets.
        lists: that call's `lists`; with prices, the warm start rescores them instead of a full pass.
        max_passes: give up (unconverged) after this many full-row equivalents of scoring.
        max_bids: give up after this many bids.
        coarse: a cold start with at least this many points begins from `coarse_prices` (0: never).
        interrupt: asked between rounds of bidding; True stops the solve, unconverged (a paused live run).

    Returns:
        An AuctionOutput; its assignment is a permutation when `converged`.
    """
    n = len(source)
    large = n * source.shape[1] > 2**20
    k_kept = k or (128 if large else 32)
    k = k or (k_kept * COLD_LISTS if large and prices is None else k_kept)
    src_t, tgt_t = source.float().contiguous(), target.float().contiguous()
    src, tgt = src_t.double().cpu().numpy(), tgt_t.double().cpu().numpy()
    norms = float((src**2).sum(1).mean() + (tgt**2).sum(1).mean())
    work, t_start = 0.0, time.perf_counter()
    if prices is None and coarse and n >= max(coarse, 2 * COARSE_FRACTION):
        p, epsilon, work = coarse_prices(src_t, tgt_t, tol=max(tol, 1e-3))
    elif prices is None:  # cold start at p_j = ||z_j||^2 / 2: every source first bids for its nearest target
        p = (tgt**2).sum(1) / 2
    else:
        p = prices.double().cpu().numpy().copy()
    assign = np.full(n, -1, dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    if assignment is not None and bool((assignment >= 0).all()):
        assign = assignment.cpu().numpy().astype(np.int64).copy()
        owner[assign] = np.arange(n)
    t_coarse = time.perf_counter() - t_start
    p32 = p.astype(np.float32)                          # follows p: bids update both
    cand = TopK(src_t, tgt_t, k, chunk)
    cand.scored = work * n
    rows = np.arange(n)
    if prices is not None and lists is not None and lists.idx.shape == cand.idx.shape and lists.source.shape == src.shape:
        cand.reuse(lists, src, tgt)      # rebuild only the lists whose loosened bound beats their best entry,
        rows = cand.unproven(p)          # all of them if that is most (a large drift, or d = 2's near-ties)
        rows = np.arange(n) if len(rows) > n // 2 else rows
    cand.refresh(rows, p, p32)
    if epsilon is None or not math.isfinite(epsilon):
        eps = norms / 20
    elif prices is None or assignment is None:
        eps = epsilon
    else:  # warm: start where the drift left the kept pairs, so that about a tenth of them rebid
        slack = cand.row_max_upper(p) - (own_values(src, tgt, assign) - p[assign])
        eps = max(epsilon, float(np.quantile(slack, 0.9)))
    stack, stale = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    fresh = np.zeros(n, dtype=np.bool_)                 # lists rebuilt since their source last bid
    src32, tgt32 = src.astype(np.float32), tgt.astype(np.float32)
    tgt32_t = np.ascontiguousarray(tgt32.T)
    # fewer stale lists than this are rebuilt one by one inside the compiled loop, on one core: a blocked
    # matrix product is faster per row, but small multi-threaded products stall when the cores are shared,
    # so only rows too cheap to be worth a call (about 2**20 / 256 multiply-adds or fewer) stay here
    min_batch = int(min(max(MIN_BATCH_ELEMS // (n * source.shape[1]), 1), 256))
    bids, rel_gap, primal, dual = 0, math.inf, -math.inf, math.inf
    t_bid = t_cert = 0.0
    while True:
        # 1. eps-CS at the new epsilon: release sources whose pair is not within eps of their best
        own = own_values(src, tgt, assign) - np.where(assign >= 0, p[assign], 0.0)
        drop = (assign >= 0) & (own < cand.row_max_upper(p) - eps)
        owner[assign[drop]] = -1
        assign[drop] = -1
        # 2. bid until every source holds a target, rebuilding stale lists in blocks
        free = np.flatnonzero(assign < 0)
        top = len(free)
        stack[:top] = free
        while cand.scored / n < max_passes and bids < max_bids and not (interrupt and interrupt()):
            t0 = time.perf_counter()
            top, n_stale, b, rebuilt = bid_rounds(stack, top, cand.idx, cand.score, cand.bound, fresh, p, p32,
                                            cand.groups, assign, owner, eps, stale, min_batch, src32, tgt32,
                                            tgt32_t, min(max_bids - bids, BID_ROUND))
            t_bid += time.perf_counter() - t0
            bids += b
            cand.scored += rebuilt
            if n_stale == 0 and (top == 0 or bids >= max_bids):
                break
            cand.refresh(stale[:n_stale].copy(), p, p32)
            fresh[stale[:n_stale]] = True
            stack[top:top + n_stale] = stale[:n_stale]
            top += n_stale
        # 3. the certificate (weak duality) on the mean squared-distance cost
        t0 = time.perf_counter()
        done = bool((assign >= 0).all())
        if done:
            primal = float(own_values(src, tgt, assign).sum())
            for attempt in range(2):
                dual, rel_gap = _certified_gap(cand, p, primal, norms)
                unproven = cand.unproven(p)
                if rel_gap <= tol or attempt or not len(unproven):
                    break
                t_cert += time.perf_counter() - t0   # rows known only by a loose bound: their exact row maxima
                cand.refresh(unproven, p, p32)
                t0 = time.perf_counter()
        t_cert += time.perf_counter() - t0
        if not done or rel_gap <= tol or eps < 1e-12 * max(norms, 1.0) or (interrupt and interrupt()):
            break
        eps /= scaling
    dev = source.device
    seconds = {"coarse": t_coarse, **cand.seconds, "bid": t_bid, "certificate": t_cert}
    seconds["other"] = time.perf_counter() - t_start - sum(seconds.values())
    return AuctionOutput(torch.from_numpy(assign).to(dev), torch.from_numpy(p).to(dev), primal, dual, rel_gap,
                         eps, cand.scored / n, bids, done and rel_gap <= tol, seconds,
                         CandidateLists(src32, *cand.cut(k_kept, p)))

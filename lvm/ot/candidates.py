"""Candidate lists for the auction (`lvm.ot.auction`): each source's k best targets, made from blocks of scores.

A list holds a source's k best targets by a_ij - p_j (raw float32 scores) and
`bound`, an upper bound on the value of every unlisted target. Full rows of
scores come in blocks from matrix products on the inputs' device; on the CPU
each block's lists are selected while it is still in cache by `select_row`
(vectorised sweeps and a quickselect, benchmarks/ot-pass.md), on a GPU by
torch.topk. `CandidateLists` carries a solve's lists to the next warm start.
"""
from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

BLOCK_ELEMS = 2**24  # scores per block of full rows (64 MB of float32): blocks of a few rows re-read all targets per
#                      block and ran the product at half the rate of 300-row blocks here (benchmarks/ot-pass.md)

@dataclass(frozen=True)
class CandidateLists:
    """A solve's candidate lists, kept in memory for the next solve on the same targets.

    The next solve's sources z'_i have moved by delta_i = z'_i - source_i. For an unlisted
    target, <z'_i, t_j> - p_j <= bound_i + |delta_i| max_j |t_j| (Cauchy-Schwarz; prices
    only rise), so each list stays valid with its bound loosened by that much, and a warm
    solve rescores only the n k listed pairs instead of a full pass of n^2 scores. A row
    whose loosened bound beats its best listed value is rebuilt when it bids (or before
    the certificate), as any stale list is.
    """

    source: np.ndarray  # (n, d) float32: the sources the lists were made for
    idx: np.ndarray     # (n, k) int64: each source's listed targets
    bound: np.ndarray   # (n,) float64: an upper bound on a_ij - p_j over its unlisted targets, at the end


CHUNK = 64   # columns per count in `select_row`'s last sweep: most chunks hold no candidate
BISECT = 16  # halvings of the threshold's bracket: a few percent more candidates than the exact one gives
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # vectorised sums and maxima; inf and nan keep their meaning


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def row_scores(x, tgt, tgt_t, out):  # pragma: no cover - compiled
    """out_j = <x, tgt_j> in float32 from tgt (n, d) or its transpose tgt_t (d, n), whichever vectorises better:
    for a small d one sweep over the targets per dimension, for a large d one dot product per target."""
    d, n = tgt_t.shape
    if d >= 32:
        for j in range(n):
            a = np.float32(0.0)
            for c in range(d):
                a += x[c] * tgt[j, c]
            out[j] = a
        return
    x0 = x[0]
    for j in range(n):
        out[j] = x0 * tgt_t[0, j]
    for c in range(1, d):
        xc = x[c]
        for j in range(n):
            out[j] += xc * tgt_t[c, j]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _rescore(src, tgt, idx, out):  # pragma: no cover - compiled
    """out[i, t] = <src_i, tgt_idx[i, t]> in float32: the listed pairs' scores for moved sources."""
    for i in range(idx.shape[0]):
        for t in range(idx.shape[1]):
            j = idx[i, t]
            a = np.float32(0.0)
            for c in range(src.shape[1]):
                a += src[i, c] * tgt[j, c]
            out[i, t] = a


@njit(cache=True, nogil=True)
def _kth_largest(v, ix, m, kth):  # pragma: no cover - compiled
    """Reorder v[:m] (and ix with it) so that v[kth] is its (kth+1)-th largest, the larger ones before it."""
    lo, hi = 0, m - 1
    while lo < hi:
        a, b, c = v[lo], v[(lo + hi) >> 1], v[hi]
        pivot = max(min(a, b), min(max(a, b), c))       # median of three
        i, j = lo, hi
        while i <= j:                                   # Hoare's partition, descending
            while v[i] > pivot:
                i += 1
            while v[j] < pivot:
                j -= 1
            if i <= j:
                v[i], v[j], ix[i], ix[j] = v[j], v[i], ix[j], ix[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            break


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")  # inlined: a call boundary stops vectorisation
def select_row(row, p32, p, gm, cj, cv, idx, score):  # pragma: no cover - compiled
    """One source's list from its full row of raw scores: its k best targets by a_ij - p_j.

    Three vectorised sweeps instead of a sort. (1) gm_g = max of the values of the
    columns j = g (mod G), G = len(gm) = 4 (k + 1): a column-wise maximum with no
    loop-carried dependence. (2) A threshold that at least k + 1 of the gm_g reach,
    by bisection on their count; at least k + 1 columns reach it, so all of the
    k + 1 best do. (3) Each chunk of CHUNK columns counts its columns at or above
    it; the few chunks with a count are searched, and the survivors, about
    1.2 (k + 1), are ranked in float64 by a partial quickselect. Fills idx and
    score (raw float32 scores) and returns `bound`, the (k+1)-th best value
    (-inf when k = n). cj, cv: scratch of size n.
    """
    n, k, G = row.shape[0], idx.shape[0], gm.shape[0]
    if k >= n:
        for j in range(n):
            idx[j], score[j] = j, row[j]
        return -np.inf
    for g in range(G):                                  # (1) the column-wise maxima
        gm[g] = row[g] - p32[g]
    s = G
    while s < n:
        for g in range(min(G, n - s)):
            v = row[s + g] - p32[s + g]
            gm[g] = v if v > gm[g] else gm[g]
        s += G
    lo, hi = gm[0], gm[0]
    for g in range(G):
        lo, hi = min(lo, gm[g]), max(hi, gm[g])
    for _ in range(BISECT):                             # (2) invariant: k + 1 or more gm_g >= lo
        mid = lo + (hi - lo) * np.float32(0.5)
        c = 0
        for g in range(G):
            c += gm[g] >= mid
        if c > k:
            lo = mid
        else:
            hi = mid
    m = 0
    for s in range(0, n, CHUNK):                        # (3) the columns that reach it
        seg, ps = row[s:s + CHUNK], p32[s:s + CHUNK]   # slices index from 0: the count vectorises
        c = 0
        for j in range(seg.shape[0]):
            c += seg[j] - ps[j] >= lo
        if c:
            for j in range(seg.shape[0]):
                if seg[j] - ps[j] >= lo:
                    cj[m], cv[m] = s + j, np.float64(seg[j]) - p[s + j]
                    m += 1
    _kth_largest(cv, cj, m, k)                          # m >= k + 1: the group maxima themselves qualify
    for t in range(k):
        idx[t], score[t] = cj[t], row[cj[t]]
    return cv[k]


@njit(cache=True, nogil=True)
def _select_block(scores, rows, lo, hi, p32, p, groups, idx, score, bound):  # pragma: no cover - compiled
    """`select_row` for rows lo..hi-1 of a block of scores (rows[a]: the source of row a)."""
    n = scores.shape[1]
    gm, cj, cv = np.empty(groups, dtype=np.float32), np.empty(n, dtype=np.int64), np.empty(n)
    for a in range(lo, hi):
        i = rows[a]
        bound[i] = select_row(scores[a], p32, p, gm, cj, cv, idx[i], score[i])


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the list selection (as many as the machine's cores; each call uses torch's thread count)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="auction")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads


class TopK:
    """Each source's k best targets (raw scores) and the bound on all the others (CPU arrays)."""

    def __init__(self, source: torch.Tensor, target: torch.Tensor, k: int, chunk: int):
        self.src, self.tgt_t = source, target.T.contiguous()   # (m, d), (d, n) on the inputs' device
        m, n = len(source), len(target)                          # m sources (a shard of them, or all) and n targets
        self.k = min(k, n)
        self.rows = max(1, min(chunk, BLOCK_ELEMS // n))
        self.idx = np.zeros((m, self.k), dtype=np.int64)
        self.score = np.zeros((m, self.k), dtype=np.float32)
        self.bound = np.full(m, -np.inf)
        self.scored = 0                                          # full rows computed so far
        self.seconds = {"product": 0.0, "select": 0.0}          # wall time of the refreshes' two parts
        self.groups = min(n, 4 * (self.k + 1))                   # column groups of `select_row`
        self.buf = torch.empty(min(self.rows, m), n) if source.device.type == "cpu" else None  # one block, reused

    def refresh(self, rows: np.ndarray, p: np.ndarray, p32: np.ndarray | None = None) -> None:
        """Rebuild the lists of `rows` from full rows of scores at prices p.

        Each block of rows is one matrix product; on the CPU its lists are selected by
        `_select_block` while the block is still in cache, on a GPU by torch.topk.
        """
        dev = self.src.device
        if dev.type == "cpu":
            p32 = p.astype(np.float32) if p32 is None else p32
            for s in range(0, len(rows), self.rows):
                r = rows[s:s + self.rows]
                out = self.buf[:len(r)]
                t0 = time.perf_counter()
                torch.mm(self.src[torch.from_numpy(r)], self.tgt_t, out=out)      # (r, n) float32
                t1 = time.perf_counter()
                scores = out.numpy()
                cuts = np.linspace(0, len(r), min(torch.get_num_threads(), len(r)) + 1).astype(int)
                select = lambda c: _select_block(scores, r, c[0], c[1], p32, p, self.groups,  # noqa: E731
                                                 self.idx, self.score, self.bound)
                if len(cuts) == 2:
                    select(cuts)
                else:  # the compiled selection releases the GIL: one slice of the block per torch thread
                    list(_pool().map(select, zip(cuts, cuts[1:])))
                self.seconds["product"] += t1 - t0
                self.seconds["select"] += time.perf_counter() - t1
            self.scored += len(rows)
            return
        n, k = self.tgt_t.shape[1], self.k
        p_dev = torch.from_numpy(p).to(dev)
        p32 = p_dev.float()
        for s in range(0, len(rows), self.rows):
            r = torch.from_numpy(rows[s:s + self.rows]).to(dev)
            scores = self.src[r] @ self.tgt_t                       # (r, n) float32
            sel = torch.topk(scores - p32, min(k + 1, n), dim=1).indices
            j = sel[:, :k]
            rc = r.cpu().numpy()
            self.idx[rc] = j.cpu().numpy()
            self.score[rc] = scores.gather(1, j).cpu().numpy()
            if k < n:                                               # value of the (k+1)-th, in float64
                jb = sel[:, k]
                self.bound[rc] = (scores.gather(1, jb[:, None])[:, 0].double() - p_dev[jb]).cpu().numpy()
        self.scored += len(rows)

    def reuse(self, lists: CandidateLists, src: np.ndarray, tgt: np.ndarray) -> None:
        """Take a previous solve's lists for sources that have moved since (see CandidateLists)."""
        src32, tgt32 = src.astype(np.float32), tgt.astype(np.float32)
        t0 = time.perf_counter()
        _rescore(src32, tgt32, lists.idx, self.score)
        self.idx[:] = lists.idx
        moved = np.sqrt(((src - lists.source.astype(np.float64)) ** 2).sum(1))
        self.bound[:] = lists.bound + moved * np.sqrt((tgt**2).sum(1).max())
        self.scored += self.k * len(src) / self.tgt_t.shape[1]   # n k scores: k / n of a pass
        self.seconds["product"] += time.perf_counter() - t0

    def cut(self, k: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(idx, bound) of each source's k best listed targets at prices p, the bound raised over the rest.

        Valid because every dropped target's value is at most the best dropped one's, and no
        unlisted target's is above the old bound (prices only rose since the lists were made).
        """
        if k >= self.k:
            return self.idx, self.bound
        value = self.score - p[self.idx]
        order = np.argpartition(-value, k, axis=1)    # the k best first, then the best dropped one
        best_dropped = np.take_along_axis(value, order[:, k:k + 1], 1)[:, 0]
        return np.take_along_axis(self.idx, order[:, :k], 1), np.maximum(self.bound, best_dropped)

    def unproven(self, p: np.ndarray) -> np.ndarray:
        """Sources whose list cannot prove its best entry is their row maximum (the bound is higher)."""
        return np.flatnonzero(self.bound > (self.score - p[self.idx]).max(1))

    def row_max_upper(self, p: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """An upper bound on max_j (a_ij - p_j) for every source (or those of `rows`), exact where the list is fresh."""
        return np.maximum((self.score[rows] - p[self.idx[rows]]).max(1), self.bound[rows])

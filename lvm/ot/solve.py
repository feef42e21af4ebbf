"""OT correction of the latent population toward a prior sample (paper Sec. 5.2).

The assignment problem (Eq. 11) between sources {z_hat_i} and equally many
targets {z_j} with cost ||z_hat_i - z_j||^2 is, since the norms are fixed,

    max_sigma  sum_i <z_hat_i, z_sigma(i)>,

whose dual is the convex energy of Eq. 12

    E(h) = (1/n) sum_i max_j (<z_hat_i, z_j> + h_j) - (1/n) sum_j h_j,
    dE/dh_j = #J_j / n - 1/n,   J_j = {i : j = argmax_k <z_hat_i, z_k> + h_k}.

Solvers share one interface, ``solve(source, target, cfg) -> OTResult``:
``fast`` (the default) is the auction algorithm with epsilon-scaling of
``lvm.ot.auction``, coordinate ascent on this same E(h), warm-started across
corrections, with a certified gap; ``paper`` is Alg. 2 as written (Adam on h,
betas (0.9, 0.5)) with the stopping rule read as the share of unmatched
targets <= epsilon (PROTOCOL sec. 4; the L1 mismatch sum_j |#J_j/n - 1/n| is
exactly twice that share); ``exact`` is ``scipy.optimize.linear_sum_assignment``
on the dense cost (small n only).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .auction import auction
from .candidates import BLOCK_ELEMS, CandidateLists
from ..config import OTConfig

Progress = Callable[[int, float], None]  # (pass, unmatched share), called after each full pass
Interrupt = Callable[[], bool]           # asked between passes: True stops an iterative solver, unconverged
EXACT_MAX_N = 6000  # the dense n x n cost in float64 and the O(n^3) solve stop being sensible here


@dataclass(frozen=True)
class OTResult:
    """What a solver returns.

    assignment: (n,) int64, the target index of each source, or -1 where the
        source was left uncorrected (a one-to-one partial map).
    unmatched: share of targets claimed by no source at the final dual h.
    cost: mean squared distance over the matched pairs.
    iterations: full passes over the sources.
    dual: E(h) at the final h (Eq. 12); the exact solver reports the optimum.
    converged: whether the stopping rule was met.
    h: (n,) dual potentials of the targets (None for the exact solver).
    gap: certified relative gap of `cost` to the optimal cost (0 for the exact
        solver, nan for Alg. 2, whose map is partial).
    epsilon: the auction's last epsilon (fast solver only).
    lists: the auction's candidate lists, for the next warm start (fast solver only; in memory, never saved).
    """

    assignment: torch.Tensor
    unmatched: float
    cost: float
    iterations: float
    dual: float
    converged: bool
    h: torch.Tensor | None = None
    gap: float = float("nan")
    epsilon: float = float("nan")
    lists: CandidateLists | None = field(default=None, repr=False, compare=False)

    @property
    def matched(self) -> float:
        """Share of sources that receive a target."""
        return float((self.assignment >= 0).float().mean())

    @property
    def warm_start(self) -> WarmStart:
        """What the next solve on the same targets can start from."""
        return WarmStart(self.h, self.epsilon, self.assignment, self.lists)


@dataclass(frozen=True)
class WarmStart:
    """A previous correction's solver state: dual h, epsilon, assignment and the auction's candidate lists
    (targets kept fixed)."""

    h: torch.Tensor | None
    epsilon: float = float("nan")
    assignment: torch.Tensor | None = None
    lists: CandidateLists | None = field(default=None, repr=False, compare=False)


def _rows_per_block(n: int, chunk: int) -> int:
    """Sources per block of scores: at most `chunk`, and at most BLOCK_ELEMS scores in all."""
    return max(1, min(chunk, BLOCK_ELEMS // max(n, 1)))


def argmax_assign(source: torch.Tensor, target: torch.Tensor, h: torch.Tensor,
                  chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """j(i) = argmax_k <z_hat_i, z_k> + h_k and its score, in blocks of `chunk` sources.

    Memory is O(n * chunk): the n x n score matrix is never formed whole.
    """
    n, rows = len(source), _rows_per_block(len(target), chunk)
    idx = torch.empty(n, dtype=torch.long, device=source.device)
    best = torch.empty(n, dtype=h.dtype, device=source.device)
    buf = torch.empty(min(rows, n), len(target), dtype=h.dtype, device=source.device)  # one block, reused:
    for s in range(0, n, rows):  # fresh blocks between small results fragment the heap (14 GB at n = 60,000)
        r = min(rows, n - s)
        torch.addmm(h, source[s:s + r], target.T, out=buf[:r])  # (r, n), fused add
        torch.max(buf[:r], dim=1, out=(best[s:s + r], idx[s:s + r]))
    return idx, best


def to_bijection(claims: torch.Tensor, n_targets: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The approximate bijection of Sec. 5.2 from a many-to-one argmax map.

    (i) a target claimed by one source keeps it; (ii) a target claimed by
    several keeps one chosen at random and the others get -1; (iii) unclaimed
    targets are simply left out of the range.
    """
    n = len(claims)
    order = torch.randperm(n, generator=generator)               # random tie-breaking among claimants
    first = torch.full((n_targets,), n, dtype=torch.long)
    first.scatter_reduce_(0, claims[order], torch.arange(n), reduce="amin")  # first claimant per target in `order`
    keep = torch.zeros(n, dtype=torch.bool)
    winners = first[first < n]
    keep[order[winners]] = True
    return torch.where(keep, claims, torch.full_like(claims, -1))


def _matched_cost(source: torch.Tensor, target: torch.Tensor, assignment: torch.Tensor) -> float:
    m = assignment >= 0
    if not bool(m.any()):
        return float("nan")
    return float((source[m] - target[assignment[m]]).pow(2).sum(1).mean())


def solve_paper(source: torch.Tensor, target: torch.Tensor, cfg: OTConfig,
                generator: torch.Generator | None = None, warm: WarmStart | None = None,
                progress: Progress | None = None, interrupt: Interrupt | None = None) -> OTResult:
    """Alg. 2: Adam descent on E(h) (Eq. 12), then the approximate bijection.

    Stops when the share of unmatched targets is <= cfg.paper.epsilon, or warns after
    cfg.max_iter passes. The gradient is centred (Sec. 5.2) since E is invariant
    to adding a constant to h.
    """
    n = len(source)
    src, tgt = source.float(), target.float()  # scores in float32, the dual and Adam moments in float64
    h0 = warm.h if warm is not None else None
    h = torch.zeros(n, dtype=torch.float64, device=src.device) if h0 is None else h0.double().to(src.device).clone()
    m = torch.zeros_like(h)
    v = torch.zeros_like(h)
    pc = cfg.paper
    b1, b2 = pc.betas
    for it in range(1, cfg.max_iter + 1):
        claims, best = argmax_assign(src, tgt, h.float(), cfg.chunk)
        counts = torch.bincount(claims, minlength=n).to(h.dtype)
        unmatched = float((counts == 0).double().mean())
        if progress is not None:
            progress(it, unmatched)
        if unmatched <= pc.epsilon or it == cfg.max_iter or (interrupt is not None and interrupt()):
            break  # the last pass only evaluates: the result then describes the h it returns
        grad = counts / n - 1.0 / n
        grad = grad - grad.mean()
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        h = h - pc.lr * (m / (1 - b1**it)) / ((v / (1 - b2**it)).sqrt() + 1e-12)
    dual = float(best.double().mean() - h.mean())
    converged = unmatched <= pc.epsilon
    if not converged and not (interrupt is not None and interrupt()):
        warnings.warn(f"OT (Alg. 2) stopped after {cfg.max_iter} passes with {unmatched:.1%} of targets "
                      f"unmatched (epsilon {pc.epsilon}); unmatched sources are left uncorrected",
                      RuntimeWarning, stacklevel=3)
    assignment = to_bijection(claims.cpu(), n, generator).to(source.device)
    return OTResult(assignment, unmatched, _matched_cost(source, target, assignment), it, dual, converged, h.float())


def solve_exact(source: torch.Tensor, target: torch.Tensor, cfg: OTConfig,
                generator: torch.Generator | None = None, warm: WarmStart | None = None,
                progress: Progress | None = None, interrupt: Interrupt | None = None) -> OTResult:
    """The optimal assignment by scipy's linear_sum_assignment (dense, O(n^3))."""
    n = len(source)
    if n > EXACT_MAX_N:
        raise ValueError(f"the exact OT solver needs the dense {n} x {n} cost matrix; use it for n <= "
                         f"{EXACT_MAX_N} or choose the 'paper' solver")
    s, t = source.double().cpu().numpy(), target.double().cpu().numpy()
    cost = (s**2).sum(1)[:, None] + (t**2).sum(1)[None, :] - 2 * s @ t.T  # (n, n)
    rows, cols = linear_sum_assignment(cost)
    assignment = torch.empty(n, dtype=torch.long)
    assignment[torch.from_numpy(rows)] = torch.from_numpy(cols).long()
    assignment = assignment.to(source.device)
    dual = float(np.einsum("ij,ij->i", s[rows], t[cols]).mean())  # max mean <z_hat_i, z_sigma(i)>
    return OTResult(assignment, 0.0, _matched_cost(source, target, assignment), 1, dual, True, None, gap=0.0)


def solve_fast(source: torch.Tensor, target: torch.Tensor, cfg: OTConfig,
               generator: torch.Generator | None = None, warm: WarmStart | None = None,
               progress: Progress | None = None, interrupt: Interrupt | None = None) -> OTResult:
    """The auction algorithm with epsilon-scaling (lvm.ot.auction), certified to cfg.fast.tol.

    Prices are p = -h, so a warm start from Alg. 2's h works too. Scores are
    computed on the inputs' device in IEEE float32 (TF32 is switched off on CUDA).
    """
    if progress is not None:
        progress(0, 1.0)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fc = cfg.fast
        out = auction(source, target, tol=fc.tol, scaling=fc.scaling, k=fc.candidates, chunk=cfg.chunk,
                      prices=None if warm is None or warm.h is None else -warm.h.double(),
                      epsilon=None if warm is None else warm.epsilon,
                      assignment=None if warm is None else warm.assignment,
                      lists=None if warm is None else warm.lists, max_passes=cfg.max_iter,
                      coarse=fc.coarse, interrupt=interrupt)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    unmatched = float((out.assignment < 0).double().mean())
    if progress is not None:
        progress(max(1, round(out.passes)), unmatched)
    if not out.converged and not (interrupt is not None and interrupt()):
        warnings.warn(f"OT (auction) stopped after {out.passes:.1f} passes with a certified gap of "
                      f"{out.rel_gap:.2g} (tol {cfg.fast.tol}) and {unmatched:.1%} unmatched; unmatched sources "
                      f"are left uncorrected", RuntimeWarning, stacklevel=3)
    n = len(source)
    return OTResult(out.assignment, unmatched, _matched_cost(source, target, out.assignment), out.passes,
                    out.dual / n, out.converged, (-out.prices).float(), gap=out.rel_gap, epsilon=out.epsilon,
                    lists=out.lists)


Solver = Callable[..., OTResult]
SOLVERS: dict[str, Solver] = {"fast": solve_fast, "paper": solve_paper, "exact": solve_exact}


def solve(source: torch.Tensor, target: torch.Tensor, cfg: OTConfig,
          generator: torch.Generator | None = None, warm: WarmStart | None = None,
          progress: Progress | None = None, interrupt: Interrupt | None = None) -> OTResult:
    """Match n sources to n targets with the solver named by ``cfg.solver``.

    Args:
        source: (n, d) inferred latents z_hat.
        target: (n, d) prior sample, kept fixed across corrections.
        cfg: solver name and its settings.
        generator: torch.Generator for the random tie-breaking of Sec. 5.2.
        warm: a previous correction's ``result.warm_start`` on the same targets.
        progress: called with (pass, unmatched share) after each pass of an iterative solver.
        interrupt: asked between passes of an iterative solver; True stops it early, unconverged and
            without a warning (a paused live run).

    Returns:
        An OTResult whose assignment is a partial one-to-one map.
    """
    if source.shape != target.shape or source.dim() != 2:
        raise ValueError(f"source and target must both be (n, d); got {tuple(source.shape)} and {tuple(target.shape)}")
    return SOLVERS[cfg.solver](source, target, cfg, generator=generator, warm=warm, progress=progress,
                               interrupt=interrupt)


def correct(z: torch.Tensor, target: torch.Tensor, assignment: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 10: z_i <- alpha T(z_i) + (1 - alpha) z_i for matched i; unmatched z_i stay put."""
    out = z.clone()
    m = assignment >= 0
    out[m] = alpha * target[assignment[m]] + (1 - alpha) * z[m]
    return out

"""The typed records of one training iteration: what `Trainer.step` returns (`Step`: its `StepMetrics` and,
when one was due, the `Correction`), and the flat JSON line of metrics.jsonl (`Step.record`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from . import ot


@dataclass(frozen=True)
class StepMetrics:
    """The figures of one iteration.

    On a due iteration (every L; None on the others): chains_w2sq, the debiased W2^2 (lvm.distance, squared
    latent units) of LATENT_FIT_N persistent chains (before Eq. 10 moves them) to the prior; q_w2sq, the same
    for the model's own q_theta(z^K), K Langevin steps from fresh noise on cfg.q_fit_n fixed training images
    with the current generator (metrics.q_fit; None for the VAE and when q_fit_n is 0), with q_mse and
    q_prior_mse, the pixel error of g(z^K) and of g(z) for prior draws z (do the inferred z explain x?).
    chain_fit, q_fit: the old raw OT costs (metrics.latent_ot_cost), kept for old readers; superseded.
    """

    iteration: int          # iterations done, this one included
    epoch: float
    loss: float             # -log p(x | z) per example (Eq. 5), or the VAE's negative ELBO
    mse: float              # mean squared pixel error of the batch
    seconds: float          # wall time of the iteration
    chain_fit: float | None = None
    q_fit: float | None = None
    chains_w2sq: float | None = None
    q_w2sq: float | None = None
    q_mse: float | None = None
    q_prior_mse: float | None = None


@dataclass(frozen=True)
class Correction:
    """One OT correction of the whole population (Alg. 1 lines 8-11).

    before: (n, d) the chains before Eq. 10; assignment: (n,) target index of each chain
    (-1: left uncorrected); skipped: an unfinished fast solve, so Eq. 10 was not applied.
    """

    before: torch.Tensor
    assignment: torch.Tensor
    result: ot.OTResult
    seconds: float
    skipped: bool = False


@dataclass(frozen=True)
class Step:
    """What `Trainer.step` returns: the iteration's metrics and its correction, if one was due."""

    metrics: StepMetrics
    correction: Correction | None = None

    def record(self) -> dict[str, float]:
        """The flat JSON line of metrics.jsonl."""
        m = {k: v for k, v in asdict(self.metrics).items() if v is not None}
        c = self.correction
        if c is not None:
            r = c.result
            m.update(ot_cost=r.cost, unmatched=r.unmatched, ot_iterations=r.iterations, ot_gap=r.gap,
                     ot_converged=float(r.converged), ot_skipped=float(c.skipped), ot_seconds=c.seconds)
        return m
